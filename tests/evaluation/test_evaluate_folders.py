"""evaluate_folders and the evaluate command on tiny NIfTI and PNG folders."""

import json
import math
import shutil
import sys
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import UserError
from autounet.evaluation import evaluate_folders, load_summary
from autounet.io import Geometry, read_label, write_segmentation
from tests.conftest import REPO, shared_dataset, write_nifti

runner = CliRunner()


def spoil(labels: np.ndarray, rng: np.random.Generator, fraction: float = 0.2) -> np.ndarray:
    """Labels with a seeded fraction of the foreground voxels set to background."""
    out = labels.copy()
    fg = np.argwhere(out > 0)
    drop = fg[rng.random(len(fg)) < fraction]
    out[tuple(drop.T)] = 0
    return out


@pytest.fixture
def nifti_folders(nifti_dataset, tmp_path):
    rng = np.random.default_rng(1)
    pred = tmp_path / "pred"
    for path in sorted((nifti_dataset / "labelsTr").glob("*.nii.gz")):
        labels, geometry = read_label(path)
        write_segmentation(spoil(labels, rng), geometry, pred / path.name)
    return nifti_dataset / "labelsTr", pred


def test_dice_per_class_matches_direct_computation(nifti_folders, tmp_path):
    ref_dir, pred_dir = nifti_folders
    summary = evaluate_folders(ref_dir, pred_dir, {"a": 1, "b": 2, "ab": [1, 2]}, ".nii.gz", surface=True,
                               workers=1)
    assert len(summary.cases) == 6
    dice_a = []
    for case in summary.cases:
        ref, _ = read_label(case.reference_file)
        pred, _ = read_label(case.prediction_file)
        tp = np.count_nonzero((ref == 1) & (pred == 1))
        dice_a.append(2 * tp / (np.count_nonzero(ref == 1) + np.count_nonzero(pred == 1)))
        assert case.metrics["ab"].fp == 0  # spoiling only removes voxels
    assert summary.class_summary("a").dice.mean == pytest.approx(np.mean(dice_a))
    assert summary.class_summary("a").dice.std == pytest.approx(np.std(dice_a))
    means = [summary.class_summary(n).dice.mean for n in ("a", "b", "ab")]
    assert summary.foreground_mean.dice == pytest.approx(np.mean(means))
    assert summary.class_summary("a").hd95_mm.defined == 6
    table = pd.read_csv(pred_dir / "metrics.csv")
    assert len(table) == 18 and {"hd95_mm", "nsd", "tp"} <= set(table.columns)
    back = load_summary(pred_dir / "summary.json")
    assert back.class_summary("b").dice.mean == pytest.approx(summary.class_summary("b").dice.mean)
    assert back.cases[0].metrics["a"].tp == summary.cases[0].metrics["a"].tp


def test_parallel_equals_serial_and_output_dir(nifti_folders, tmp_path):
    ref_dir, pred_dir = nifti_folders
    serial = evaluate_folders(ref_dir, pred_dir, {"a": 1, "b": 2}, workers=1, output_dir=tmp_path / "s")
    parallel = evaluate_folders(ref_dir, pred_dir, {"a": 1, "b": 2}, workers=2, output_dir=tmp_path / "p")
    assert (tmp_path / "s" / "summary.json").is_file() and not (pred_dir / "summary.json").exists()
    assert [c.metrics["b"].dice for c in serial.cases] == [c.metrics["b"].dice for c in parallel.cases]


def test_classes_found_when_none_given_and_absent_class_is_nan(tmp_path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    one = np.zeros((3, 5, 5), np.uint8)
    one[1, 1:3, 1:3] = 1
    two = one.copy()
    two[0, 4, 4] = 2
    for name, ref, pred in (("x", one, one), ("y", two, two)):
        write_nifti(ref_dir / f"{name}.nii.gz", ref)
        write_nifti(pred_dir / f"{name}.nii.gz", pred)
    summary = evaluate_folders(ref_dir, pred_dir, workers=1)
    assert summary.classes == {"1": [1], "2": [2]}
    x = next(c for c in summary.cases if c.case == "x")
    assert math.isnan(x.metrics["2"].dice) and x.metrics["2"].tn == 75
    stats = summary.class_summary("2")
    assert stats.dice.mean == 1.0 and stats.dice.defined == 1 and stats.dice.undefined == 1
    assert summary.class_summary("2").absent_in_both == 1
    assert json.loads((pred_dir / "summary.json").read_text())["cases"][0]["metrics"]["2"]["dice"] is None


def write_png_discs(folder, n=4, seed=0):
    """PNG label maps with one disc each (the shared PNG fixture's labels are blank at its size)."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[:32, :40]
    for i in range(n):
        cy, cx = rng.uniform(10, 22), rng.uniform(10, 30)
        labels = ((y - cy) ** 2 + (x - cx) ** 2 < 36).astype(np.uint8)[None]
        write_segmentation(labels, Geometry((999.0, 1.0, 1.0), is_2d=True), folder / f"img_{i:03d}.png")
    return folder


def test_png_folder_two_dimensional(tmp_path):
    ref_dir = write_png_discs(tmp_path / "ref")
    pred_dir = tmp_path / "pred"
    shutil.copytree(ref_dir, pred_dir)
    summary = evaluate_folders(ref_dir, pred_dir, {"fg": 1}, ".png", surface=True, workers=1)
    fg = summary.class_summary("fg")
    assert fg.dice.mean == 1.0 and fg.hd95_mm.mean == 0.0 and fg.nsd.mean == 1.0
    first = summary.cases[0].metrics["fg"]
    assert first.reference_volume_mm3 == first.reference_voxels  # 1 mm pixels, area in mm^2


def test_missing_reference_shape_mismatch_unreadable_and_empty(nifti_folders, tmp_path):
    ref_dir, pred_dir = nifti_folders
    write_nifti(pred_dir / "stranger.nii.gz", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UserError, match="stranger.nii.gz.*no reference"):
        evaluate_folders(ref_dir, pred_dir, workers=1)
    (pred_dir / "stranger.nii.gz").unlink()
    write_nifti(pred_dir / "case_000.nii.gz", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UserError, match="case_000.nii.gz: shape"):
        evaluate_folders(ref_dir, pred_dir, workers=1)
    (pred_dir / "case_000.nii.gz").write_bytes(b"not an image")
    with pytest.raises(UserError, match="case_000.nii.gz"):
        evaluate_folders(ref_dir, pred_dir, workers=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*no label files"):
        evaluate_folders(ref_dir, tmp_path / "empty")
    with pytest.raises(UserError, match="nowhere.*does not exist"):
        evaluate_folders(tmp_path / "nowhere", pred_dir)
    with pytest.raises(UserError, match="reference folders are never written to"):
        evaluate_folders(ref_dir, ref_dir)
    assert not (ref_dir / "summary.json").exists()


def test_cli_prints_table_and_uses_dataset_json(nifti_folders, nifti_dataset, data_root):
    ref_dir, pred_dir = nifti_folders
    result = runner.invoke(app, ["evaluate", "--ref", str(ref_dir), "--pred", str(pred_dir), "-d",
                                 str(nifti_dataset), "--surface", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "foreground" in result.output and "HD95" in result.output and "a (1)" in result.output
    assert load_summary(pred_dir / "summary.json").classes == {"a": [1], "b": [2]}


def test_cli_bad_input_is_one_sentence_without_traceback(tmp_path):
    (tmp_path / "ref").mkdir()
    done = subprocess.run([sys.executable, "-m", "autounet", "evaluate", "--ref", str(tmp_path / "ref"),
                           "--pred", str(tmp_path / "missing")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1
    assert "missing: the prediction folder does not exist" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_png_cli(tmp_path):
    ref_dir = write_png_discs(tmp_path / "ref")
    pred_dir = tmp_path / "pred"
    shutil.copytree(ref_dir, pred_dir)
    labels, geometry = read_label(pred_dir / "img_000.png")
    write_segmentation(np.zeros_like(labels), geometry, pred_dir / "img_000.png")
    result = runner.invoke(app, ["evaluate", "--ref", str(ref_dir), "--pred", str(pred_dir), "--surface"])
    assert result.exit_code == 0, result.output
    summary = load_summary(pred_dir / "summary.json")
    assert summary.class_summary("1").dice.mean == pytest.approx(3 / 4)
    assert summary.class_summary("1").dice.std == pytest.approx(np.std([0, 1, 1, 1]))
    assert summary.class_summary("1").hd95_mm.undefined == 1


def test_real_hippocampus_labels_against_themselves(tmp_path):
    folder = shared_dataset("Dataset004_Hippocampus") / "labelsTr"
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in sorted(folder.glob("*.nii.gz"))[:10]:
        shutil.copy(path, pred / path.name)
    summary = evaluate_folders(folder, pred, {"anterior": 1, "posterior": 2}, ".nii.gz", surface=True,
                               workers=1)
    assert summary.foreground_mean.dice == 1.0 and summary.foreground_mean.hd95_mm == 0.0
