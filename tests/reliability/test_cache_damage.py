"""A damaged or stale preprocessed cache is named with its file and the fix, never a numpy traceback:
a truncated array, properties that do not match the array, a hand-edited properties file, raw files changed
since the cache was made. Preprocessing redoes exactly the damaged or stale cases."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import CorruptCacheError
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset, write_nifti
from tests.preprocessing.plans_factory import make_plans, prepare_dataset

runner = CliRunner()


@pytest.fixture
def cached(data_root):
    """A preprocessed tiny dataset: (raw folder, store)."""
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=2, shape=(10, 12, 11))
    location = prepare_dataset(raw, data_root, make_plans())
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return raw, CaseStore(location.preprocessed / "autounet_3d_fullres")


def _loads(store: CaseStore) -> None:
    for case_id in store.case_ids():
        store.load(case_id)


def test_the_cache_records_its_raw_files(cached):
    raw, store = cached
    sources = store.load_properties("case_000").sources
    assert [os.path.basename(s.path) for s in sources] == ["case_000_0000.nii.gz", "case_000.nii.gz"]
    _loads(store)


@pytest.mark.parametrize("suffix", [".npy", "_seg.npy", "_locations.npz"])
def test_a_truncated_file_is_named_with_the_fix(cached, suffix):
    _, store = cached
    path = store.folder / f"case_001{suffix}"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptCacheError, match=rf"{path}: corrupted.*autounet preprocess.*--overwrite"):
        _loads(store)
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    _loads(store)


def test_properties_that_do_not_match_the_array_are_named(cached):
    _, store = cached
    path = store.folder / "case_000.json"
    properties = json.loads(path.read_text())
    properties["shape_after_resample"][0] += 3
    path.write_text(json.dumps(properties))
    with pytest.raises(CorruptCacheError, match=r"case_000.npy: shape \[1, .*\] does not match its properties "
                                                r"case_000.json"):
        _loads(store)


def test_a_hand_edited_properties_file_is_named_with_the_key(cached):
    _, store = cached
    path = store.folder / "case_000.json"
    properties = json.loads(path.read_text())
    properties["crop_box"] = properties.pop("crop_bbox")
    path.write_text(json.dumps(properties))
    with pytest.raises(CorruptCacheError, match=rf"{path}: key 'crop_box' is not a key of CaseProperties"):
        _loads(store)
    assert not store.is_done("case_000")  # so a plain rerun of preprocess makes it again
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 0 and store.is_done("case_000"), result.output
    _loads(store)


def test_a_cache_made_from_raw_files_that_changed_since_is_stale(cached):
    raw, store = cached
    image = raw / "imagesTr" / "case_001_0000.nii.gz"
    write_nifti(image, np.full((10, 12, 11), 7.0, np.float32))
    with pytest.raises(CorruptCacheError, match=rf"case_001.json: the cached case was made from {image}, which "
                                                r"changed since \(size or modification time\); run `autounet preprocess`"):
        _loads(store)
    result = runner.invoke(app, ["train", "Dataset100", "--fold", "0", "--epochs", "1", "--workers", "0",
                                 "--device", "cpu"])
    assert result.exit_code == 1 and "which changed since" in result.output and "Traceback" not in result.output
    assert not store.is_done("case_001") and store.is_done("case_000")
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])  # redoes the stale case only
    assert result.exit_code == 0, result.output
    _loads(store)


def test_a_copy_that_only_changes_modification_times_is_kept_by_preprocess(cached):
    raw, store = cached
    image = raw / "imagesTr" / "case_001_0000.nii.gz"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(CorruptCacheError, match="keeps those whose files only got a new time"):
        _loads(store)  # opening a case only looks at sizes and times
    cached_array = (store.folder / "case_001.npy").stat().st_mtime_ns
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert (store.folder / "case_001.npy").stat().st_mtime_ns == cached_array  # compared by content and kept
    assert store.load_properties("case_001").sources[0].mtime_ns == image.stat().st_mtime_ns
    _loads(store)


def test_a_cache_whose_raw_files_are_gone_still_loads(cached):
    raw, store = cached
    (raw / "labelsTr" / "case_000.nii.gz").unlink()  # e.g. the cache was moved to a machine without raw data
    _loads(store)
