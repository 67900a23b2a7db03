"""Strict JSON loading: an unknown key, a wrong type or a newer schema is an error naming the file and the key;
older files (without fields added since) still load; free-form dicts stay free-form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import SchemaError, UserError
from autounet.planning.plans import Plans
from autounet.utils.serde import from_json_value, load_dataclass, load_json_file, to_json_value
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, plans_of
from tests.preprocessing.plans_factory import make_plans, prepare_dataset


@dataclass
class Inner:
    size: int
    ratio: float = 0.5


@dataclass
class Record:
    name: str
    inner: Inner
    shape: tuple[int, int, int]
    by_label: dict[int, list[float]]
    choice: int | str = 0
    note: str | None = None
    added_later: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    schema_version: int = 2


def _record() -> dict:
    return to_json_value(Record("a", Inner(3), (1, 2, 3), {1: [0.5]}, "x", extra={"anything": {"goes": [1]}}))


def test_a_record_round_trips_and_free_form_dicts_stay_free():
    data = _record()
    assert load_dataclass(Record, data) == Record("a", Inner(3), (1, 2, 3), {1: [0.5]}, "x",
                                                  extra={"anything": {"goes": [1]}})


def test_an_older_file_without_new_fields_loads_with_defaults():
    data = _record()
    del data["added_later"], data["note"], data["schema_version"], data["inner"]["ratio"]
    loaded = load_dataclass(Record, data)
    assert loaded.added_later == [] and loaded.note is None and loaded.inner.ratio == 0.5
    data["schema_version"] = 1
    assert load_dataclass(Record, data).schema_version == 1


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["inner"].update(sise=4), "key 'inner.sise' is not a key of Inner (known: size, ratio)"),
    (lambda d: d["inner"].update(size="4"), "key 'inner.size' is \"4\", not a whole number"),
    (lambda d: d["inner"].update(size=True), "key 'inner.size' is true, not a whole number"),
    (lambda d: d["inner"].update(ratio=None), "key 'inner.ratio' is null, not a number"),
    (lambda d: d.update(shape=[1, 2]), "key 'shape' has 2 values; it must have 3"),
    (lambda d: d.update(by_label={"one": [1.0]}), "key 'by_label.one' is not a whole-number key"),
    (lambda d: d.update(by_label={"1": ["x"]}), "key 'by_label.1[0]' is \"x\", not a number"),
    (lambda d: d.update(choice=[1]), "key 'choice' is [1], not a whole number or text"),
    (lambda d: d.pop("inner"), "the required key 'inner' (Record) is missing"),
    (lambda d: d.update(schema_version=3), "key 'schema_version' is 3, newer than this autounet reads (up to 2"),
])
def test_unknown_keys_wrong_types_and_newer_schemas_are_named(edit, message):
    data = _record()
    edit(data)
    with pytest.raises(SchemaError) as raised:
        load_dataclass(Record, data)
    assert message in str(raised.value)
    assert isinstance(raised.value, UserError) and isinstance(raised.value, TypeError)


def test_a_partial_reader_ignores_the_keys_it_does_not_own():
    assert load_dataclass(Inner, {"size": 2, "other_reader_key": 1}, partial=True) == Inner(2)
    with pytest.raises(SchemaError):
        load_dataclass(Inner, {"size": 2, "other_reader_key": 1})


def test_load_json_file_names_the_file_the_key_and_the_fix(tmp_path):
    path = tmp_path / "record.json"
    data = _record()
    data["inner"]["sise"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaError, match=rf"{path}: key 'inner.sise' is not a key of Inner .* rebuild it\."):
        load_json_file(Record, path, "rebuild it")
    path.write_text("{broken")
    with pytest.raises(SchemaError, match=rf"{path}: is not readable JSON .*; rebuild it\."):
        load_json_file(Record, path, "rebuild it")


def test_overrides_of_unions_still_pick_the_fitting_type():
    assert from_json_value(int | str, "all") == "all" and from_json_value(int | str, 3) == 3
    assert from_json_value(float | None, 2) == 2.0 and isinstance(from_json_value(float | None, 2), float)


def test_a_hand_edited_plans_json_is_refused_by_the_cli_with_file_and_key(data_root):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, shape=(10, 12, 11))
    location = prepare_dataset(raw, data_root, make_plans())
    path = location.preprocessed / "plans.json"
    plans = json.loads(path.read_text())
    plans["configurations"]["3d_fullres"]["batch_sise"] = 4
    path.write_text(json.dumps(plans))
    result = CliRunner().invoke(app, ["preprocess", "Dataset100"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(path) in result.output and "configurations.3d_fullres.batch_sise" in result.output
    del plans["configurations"]["3d_fullres"]["batch_sise"]
    plans["configurations"]["3d_fullres"]["batch_size"] = "4"
    path.write_text(json.dumps(plans))
    result = CliRunner().invoke(app, ["preprocess", "Dataset100"])
    assert result.exit_code == 1 and "configurations.3d_fullres.batch_size' is \"4\", not a whole number" in \
        result.output


def test_plans_from_a_newer_autounet_are_refused_by_version():
    data = to_json_value(plans_of("x", configuration()))
    data["schema_version"] = 99
    with pytest.raises(UserError, match="schema version 99"):
        Plans.from_json(data)
