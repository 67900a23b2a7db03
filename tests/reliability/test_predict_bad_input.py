"""`autounet predict` on inputs `verify` never saw: each bad case is named, the good ones are still predicted,
and the exit status is non-zero at the end; folders that cannot work are refused before the model loads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autounet.cli.main import app
from tests.conftest import write_nifti

runner = CliRunner()


def _predict(*args: str):
    return runner.invoke(app, ["predict", *args, "--no-tta"])


def _good_copy(raw: Path, folder: Path) -> Path:
    shutil.copytree(raw / "imagesTs", folder)
    return folder


def test_nan_and_inf_intensities_are_refused_by_name_and_the_others_predicted(trained_3d, tmp_path):
    inputs = _good_copy(trained_3d, tmp_path / "in")
    image = np.random.default_rng(0).normal(30, 5, (16, 20, 18)).astype(np.float32)
    image[3, 4, 5], image[7, 8, 9] = np.nan, np.inf
    write_nifti(inputs / "holes_0000.nii.gz", image)
    out = tmp_path / "out"
    result = _predict("-i", str(inputs), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "holes_0000.nii.gz: has 2 NaN or infinite voxel(s)" in result.output
    assert "predicted 2 case(s)" in result.output and "1 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["case_001.nii.gz", "case_002.nii.gz"]


def test_a_2d_image_for_a_3d_model_is_refused(trained_3d, tmp_path):
    inputs = _good_copy(trained_3d, tmp_path / "in")
    Image.fromarray(np.full((20, 18), 30, np.uint8)).save(inputs / "flat_0000.png")
    write_nifti(inputs / "slice_0000.nii.gz", np.full((1, 20, 18), 30, np.float32))
    result = _predict("-i", str(inputs), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "flat_0000.png: is a 2D image (one slice), but the model was trained on 3D volumes" in result.output
    assert "slice_0000.nii.gz: is a 2D image" in result.output
    assert "predicted 2 case(s)" in result.output


def test_a_volume_for_a_2d_model_is_refused(trained_png, tmp_path):
    inputs = _good_copy(trained_png, tmp_path / "in")
    write_nifti(inputs / "vol_0000.nii.gz", np.full((5, 48, 40), 30, np.float32))
    result = _predict("-i", str(inputs), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "vol_0000.nii.gz: is a 3D volume (5 slices), but the model was trained on 2D images" in result.output
    assert "predicted 2 case(s)" in result.output


def test_an_empty_folder_is_refused_before_the_model_loads(trained_3d, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _predict("-i", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "empty: no image files found" in result.output and "model:" not in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_an_image_is_named_and_the_images_predicted(trained_3d, tmp_path):
    inputs = _good_copy(trained_3d, tmp_path / "in")
    (inputs / "notes.txt").write_text("scanner settings")
    (inputs / ".DS_Store").write_bytes(b"\0")  # hidden files are not the user's inputs
    result = _predict("-i", str(inputs), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "notes.txt: is not an image file autounet reads" in result.output
    assert ".DS_Store" not in result.output and "predicted 2 case(s)" in result.output


def test_output_equal_to_input_is_refused_and_nothing_is_written(trained_3d, tmp_path):
    inputs = _good_copy(trained_3d, tmp_path / "in")
    before = sorted(p.name for p in inputs.iterdir())
    result = _predict("-i", str(inputs), "-o", str(inputs))
    assert result.exit_code == 1 and "output folder is the input folder" in result.output
    assert sorted(p.name for p in inputs.iterdir()) == before


def test_an_unwritable_output_folder_is_refused_before_the_model_loads(trained_3d, tmp_path, monkeypatch):
    import errno

    import autounet.utils.atomic as atomic

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(atomic, "_flush_to_disk", denied)
    out = tmp_path / "out"
    result = _predict("-i", str(trained_3d / "imagesTs"), "-o", str(out))
    assert result.exit_code == 1
    assert f"{out}: cannot be written (permission denied)" in result.output
    assert "model:" not in result.output and "Traceback" not in result.output
    assert list(out.iterdir()) == []  # the probe file was removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused_before_the_model_loads(trained_3d, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = _predict("-i", str(trained_3d / "imagesTs"), "-o", str(out))
    finally:
        out.chmod(0o755)
    assert result.exit_code == 1 and f"{out}: cannot be written" in result.output
    assert "model:" not in result.output
