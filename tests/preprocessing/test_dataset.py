"""preprocess_dataset: every case into the store, idempotent, crash-safe, failures named."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from autounet.errors import MissingArtifactError, UserError
from autounet.planning.plans import load_plans, save_plans
from autounet.preprocessing import store as store_module
from autounet.preprocessing.dataset import CaseTask, preprocess_dataset, preprocess_task
from autounet.preprocessing.memory import case_peak_bytes, choose_workers
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset
from tests.preprocessing.plans_factory import make_configuration, make_plans, prepare_dataset


@pytest.fixture
def location(data_root):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=4, shape=(12, 14, 13))
    plans = make_plans(make_configuration("3d_fullres", spacing=(0.8, 1.0, 1.2)),
                       make_configuration("2d", spacing=(1.0, 0.7, 0.7), is_2d=True))
    return prepare_dataset(raw, data_root, plans)


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_every_case_for_every_configuration(location):
    summary = preprocess_dataset(location, workers=1)
    assert summary.ok and [c.name for c in summary.configurations] == ["3d_fullres", "2d"]
    assert json.loads((location.preprocessed / "dataset.json").read_text())["numTraining"] == 4
    for config, c_summary in zip(("3d_fullres", "2d"), summary.configurations):
        store = CaseStore(location.preprocessed / f"autounet_{config}")
        assert store.case_ids() == [f"case_{i:03d}" for i in range(4)]
        assert c_summary.cases_written == 4 and c_summary.cases_skipped == 0 and c_summary.disk_bytes > 0
        case = store.load("case_001")
        assert case.data.dtype == np.float32 and case.seg.dtype == np.int8
        assert list(case.data.shape[1:]) == case.properties.shape_after_resample
        assert set(case.class_locations) == {1, 2}
        for label, coords in case.class_locations.items():
            assert len(coords) > 0 and np.all(case.seg[0][tuple(coords.T)] == label)
    assert CaseStore(location.preprocessed / "autounet_2d").load("case_000").data.shape[1] == 12  # z kept


def test_second_run_skips_and_overwrite_redoes(location):
    preprocess_dataset(location, ["3d_fullres"], workers=1)
    folder = location.preprocessed / "autounet_3d_fullres"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = preprocess_dataset(location, ["3d_fullres"], workers=1)
    assert again.configurations[0].cases_written == 0 and again.configurations[0].cases_skipped == 4
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "preprocessing_settings.json"} \
        == {k: v for k, v in before.items() if k != "preprocessing_settings.json"}
    contents = folder_contents(folder)
    redone = preprocess_dataset(location, ["3d_fullres"], workers=1, overwrite=True)
    assert redone.configurations[0].cases_written == 4
    assert folder_contents(folder) == contents  # deterministic


def test_interrupted_run_finishes_with_identical_files(location, tmp_path):
    reference = preprocess_dataset(location, ["3d_fullres"], workers=1)
    folder = location.preprocessed / "autounet_3d_fullres"
    expected = folder_contents(folder)
    assert reference.ok
    # Start over and stop after two cases, in the middle of writing the third: the second array file of
    # case_002 never got renamed into place (a killed write leaves a temporary file) and its properties
    # (written last) are missing.
    for path in folder.glob("case_*"):
        path.unlink()  # a restarted run begins with the settings file written, then writes cases
    plans = load_plans(location.preprocessed)
    config = plans.configuration("3d_fullres")
    from autounet.dataset import find_cases, load_spec

    cases = find_cases(location.raw, load_spec(location.raw))
    for case in cases[:3]:
        preprocess_task(CaseTask(case, plans, [config], [folder], [1, 2]))
    (folder / "case_002.json").unlink()
    seg = folder / "case_002_seg.npy"
    (folder / ".case_002_seg.npy.abc123.tmp.npy").write_bytes(seg.read_bytes()[:100])
    seg.unlink()
    assert CaseStore(folder).case_ids() == ["case_000", "case_001"]
    resumed = preprocess_dataset(location, ["3d_fullres"], workers=1)
    assert resumed.configurations[0].cases_written == 2 and resumed.configurations[0].cases_skipped == 2
    assert folder_contents(folder) == expected


def test_unreadable_case_is_named_and_the_rest_finish(location):
    (location.raw / "imagesTr" / "case_002_0000.nii.gz").write_bytes(b"not an image")
    summary = preprocess_dataset(location, ["3d_fullres"], workers=1)
    assert [f.case_id for f in summary.failures] == ["case_002"]
    assert "case_002_0000.nii.gz" in summary.failures[0].message
    assert CaseStore(location.preprocessed / "autounet_3d_fullres").case_ids() == ["case_000", "case_001",
                                                                                  "case_003"]


def test_missing_plans_and_unknown_configuration(location):
    with pytest.raises(UserError, match="planned: 3d_fullres, 2d"):
        preprocess_dataset(location, ["3d_lowres"], workers=1)
    (location.preprocessed / "plans.json").unlink()
    with pytest.raises(MissingArtifactError, match="run `autounet plan Dataset100_Tiny` first"):
        preprocess_dataset(location, workers=1)


def test_changed_plans_redo_the_cases(location):
    preprocess_dataset(location, ["3d_fullres"], workers=1)
    plans = load_plans(location.preprocessed)
    plans.configurations["3d_fullres"].spacing = [1.0, 1.0, 1.0]
    save_plans(plans, location.preprocessed)
    summary = preprocess_dataset(location, ["3d_fullres"], workers=1)
    assert summary.configurations[0].cases_written == 4 and any("plans changed" in n for n in summary.notes)
    case = CaseStore(location.preprocessed / "autounet_3d_fullres").load("case_000")
    assert case.properties.target_spacing == [1.0, 1.0, 1.0]


def test_full_disk_leaves_no_partial_case(location, monkeypatch):
    real_write_bytes = store_module.write_bytes

    def full_after_arrays(path, data):
        if str(path).endswith("_locations.npz") and "case_001" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_bytes(path, data)

    monkeypatch.setattr(store_module, "write_bytes", full_after_arrays)
    with pytest.raises(UserError, match="disk is full"):
        preprocess_dataset(location, ["3d_fullres"], workers=1)
    folder = location.preprocessed / "autounet_3d_fullres"
    assert CaseStore(folder).case_ids() == ["case_000"]
    assert not any(p.name.startswith("case_001") or p.name.startswith(".") for p in folder.iterdir())


def test_worker_choice_respects_memory():
    small = case_peak_bytes((20, 20, 20), (20, 20, 20), (20, 20, 20), 1)
    huge = case_peak_bytes((2000, 2000, 2000), (2000, 2000, 2000), (2000, 2000, 2000), 2)
    assert small < huge
    assert choose_workers(huge, 100).workers == 1 and choose_workers(huge, 100).limited_by_memory
    assert choose_workers(small, 1).workers == 1
    assert choose_workers(huge, 100, requested=3).workers == 3
