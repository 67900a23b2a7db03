"""A full disk or an unwritable folder in the middle of `predict` and `preprocess`: one sentence naming the
folder and what to do, a non-zero exit, no file a rerun would trust, and a rerun that completes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autounet.utils.atomic as atomic
from autounet.cli.main import app
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset
from tests.preprocessing.plans_factory import make_plans, prepare_dataset
from tests.preprocessing.test_dataset import folder_contents

runner = CliRunner()
REAL_FLUSH = atomic._flush_to_disk


def _fail_writes(monkeypatch, code: int, when) -> list[str]:
    """Make the flush of every temporary file whose name satisfies ``when`` fail with ``code``; returns the
    names that failed."""
    failed: list[str] = []

    def flush(path: Path) -> None:
        if when(path.name):
            failed.append(path.name)
            raise OSError(code, "simulated", str(path))
        REAL_FLUSH(path)

    monkeypatch.setattr(atomic, "_flush_to_disk", flush)
    return failed


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full while writing case_002.nii.gz"),
                                         (errno.EACCES, "cannot be written while writing case_002.nii.gz")])
def test_predict_stops_with_one_sentence_and_keeps_no_partial_file(trained_3d, tmp_path, monkeypatch, code, words):
    out = tmp_path / "out"
    failed = _fail_writes(monkeypatch, code, lambda name: name.startswith(".case_002"))
    result = runner.invoke(app, ["predict", "-i", str(trained_3d / "imagesTs"), "-o", str(out), "--no-tta"])
    assert failed and result.exit_code == 1
    assert f"{out}: {words}" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["case_001.nii.gz"]  # no temporary, no half case_002
    monkeypatch.setattr(atomic, "_flush_to_disk", REAL_FLUSH)
    result = runner.invoke(app, ["predict", "-i", str(trained_3d / "imagesTs"), "-o", str(out), "--no-tta",
                                 "--continue"])
    assert result.exit_code == 0, result.output
    assert "predicted 1 case(s)" in result.output and "skipped 1" in result.output


def test_preprocess_disk_full_names_the_folder_and_a_rerun_completes(data_root, monkeypatch):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=3, shape=(10, 12, 11))
    location = prepare_dataset(raw, data_root, make_plans())
    folder = location.preprocessed / "autounet_3d_fullres"
    failed = _fail_writes(monkeypatch, errno.ENOSPC, lambda name: name.startswith(".case_001_seg.npy"))
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert failed and result.exit_code == 1, result.output
    assert f"{folder}: the disk is full" in result.output and "case_001" in result.output
    assert "Traceback" not in result.output
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".") or n.startswith("case_001")], names  # nothing half-made
    assert CaseStore(folder).case_ids() == ["case_000"]
    monkeypatch.setattr(atomic, "_flush_to_disk", REAL_FLUSH)
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1"])
    assert result.exit_code == 0, result.output
    resumed = folder_contents(folder)
    result = runner.invoke(app, ["preprocess", "Dataset100", "--workers", "1", "--overwrite"])
    assert result.exit_code == 0 and folder_contents(folder) == resumed


def test_an_oserror_outside_the_atomic_writers_is_one_sentence(data_root, tmp_path, monkeypatch):
    """A full disk hit by a plain mkdir (not through utils/atomic) still reads as one sentence, not a traceback."""
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, shape=(10, 12, 11))
    prepare_dataset(raw, data_root, make_plans())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(data_root / "preprocessed" / "x" / "new"))

    monkeypatch.setattr("autounet.preprocessing.dataset.preprocess_dataset", full)
    result = runner.invoke(app, ["preprocess", "Dataset100"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the disk is full" in result.output, result.output


def test_a_writer_failing_on_a_nearly_full_disk_is_reported_as_full(tmp_path, monkeypatch):
    """SimpleITK reports a full disk as a RuntimeError; with (almost) no space left it reads as a full disk."""
    import shutil
    from collections import namedtuple

    usage, real = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: usage(10, 10, 0))
    with pytest.raises(atomic.StorageError, match="the disk is full while writing a.nii.gz"):
        with atomic.atomic_path(tmp_path / "a.nii.gz") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("ITK: could not write")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(atomic.shutil, "disk_usage", real)
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "a.nii.gz"):
            raise RuntimeError("a bug, not a full disk")
