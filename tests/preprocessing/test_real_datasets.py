"""`fingerprint`, `plan` and `preprocess` through the CLI on subsets of the real datasets in ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.dataset import find_cases, load_spec
from autounet.io import read_label
from autounet.planning.plans import load_plans
from autounet.preprocessing.pipeline import restore_labels
from autounet.preprocessing.store import CaseStore
from tests.conftest import REAL_DATASETS, shared_dataset

SUBSET = 5


def copy_subset(source: Path, raw: Path, n: int) -> Path:
    """The first ``n`` training cases of ``source`` as a dataset of their own under ``raw``."""
    spec = load_spec(source)
    target = raw / source.name
    cases = find_cases(source, spec)[:n]
    for case in cases:
        for path in (*case.image_files, case.label_file):
            destination = target / path.parent.name / path.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    data = json.loads((source / "dataset.json").read_text())
    data["numTraining"] = len(cases)
    (target / "dataset.json").write_text(json.dumps(data, indent=2))
    return target


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_DATASETS)
def test_preprocess_real_dataset_through_the_cli(name, data_root):
    raw = copy_subset(shared_dataset(name), data_root / "raw", SUBSET)
    runner = CliRunner()
    result = runner.invoke(app, ["plan", name, "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["preprocess", name, "--workers", "2"])
    assert result.exit_code == 0, result.output
    preprocessed = data_root / "preprocessed" / name
    plans = load_plans(preprocessed)
    spec = load_spec(raw)
    assert json.loads((preprocessed / "dataset.json").read_text())["numTraining"] == SUBSET
    for config in plans.configurations.values():
        store = CaseStore(preprocessed / config.data_identifier)
        cases = find_cases(raw, spec)
        assert store.case_ids() == [c.case_id for c in cases]
        for case in cases[:2]:
            loaded = store.load(case.case_id)
            props = loaded.properties
            assert loaded.data.shape == (spec.num_channels, *props.shape_after_resample)
            assert np.isfinite(loaded.data).all()
            assert set(np.unique(loaded.seg)) <= {-1, *spec.label_values}
            label, _ = read_label(case.label_file)
            restored = restore_labels(np.asarray(loaded.seg[0]), props, config)
            assert restored.shape == label.shape
            if np.allclose(props.target_spacing, props.geometry.spacing):
                assert np.array_equal(restored, label)
            else:
                assert np.mean(restored == label) > 0.95
    again = runner.invoke(app, ["preprocess", name])
    assert again.exit_code == 0 and "skipped" in again.output
