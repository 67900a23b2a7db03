"""The whole pipeline through the real command line, on tiny synthetic datasets.

plan -> preprocess -> train a few iterations -> predict -> evaluate (and find-best), each as a separate
``python -m autounet`` process, the way a user runs them; then ``autounet run`` chaining all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autounet.io import read_image, read_label
from tests.conftest import REPO, make_nifti_dataset, make_png_dataset

pytestmark = pytest.mark.slow

TRAIN_FAST = ["--epochs", "1", "--iterations-per-epoch", "3", "--val-iterations", "1", "--workers", "0",
              "--device", "cpu"]


def autounet(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUTOUNET_HOME": str(root), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "autounet", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("kind", ["nifti", "png_rgb"])
def test_plan_preprocess_train_predict_evaluate(tmp_path, kind):
    root = tmp_path / "root"
    if kind == "nifti":
        raw = make_nifti_dataset(root / "raw" / "Dataset201_E2E", n_cases=5, shape=(16, 24, 20),
                                 spacing=(2.0, 1.0, 1.0))
        configuration, ending = "3d_fullres", ".nii.gz"
    else:
        raw = make_png_dataset(root / "raw" / "Dataset202_E2ERgb", n_cases=5, rgb=True)
        configuration, ending = "2d", ".png"
    name = raw.name

    ok(autounet(root, "plan", "Dataset" + name[7:10], "-c", configuration))
    plans = json.loads((root / "preprocessed" / name / "plans.json").read_text())
    assert configuration in plans["configurations"]
    ok(autounet(root, "preprocess", name[7:10], "-c", configuration))
    ok(autounet(root, "train", name, "-c", configuration, "--fold", "0", *TRAIN_FAST))
    fold = root / "results" / name / configuration / "fold_0"
    assert (fold / "model_final.safetensors").is_file() and (fold / "progress.png").is_file()
    assert (fold / "validation" / "summary.json").is_file()

    out = tmp_path / "predictions"
    ok(autounet(root, "predict", "-i", str(raw / "imagesTr"), "-o", str(out), "-d", name, "-c", configuration,
                "--no-tta"))
    for label_file in sorted((raw / "labelsTr").iterdir()):
        predicted, geometry = read_label(out / label_file.name)
        reference, reference_geometry = read_label(label_file)
        assert predicted.shape == reference.shape
        assert geometry.matches(reference_geometry) == []
        assert set(np.unique(predicted)) <= {0, 1, 2}
    result = ok(autounet(root, "evaluate", "--ref", str(raw / "labelsTr"), "--pred", str(out), "-d", name))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["cases"]) == 5
    assert "Dice" in result.stdout or "dice" in result.stdout.lower()

    ok(autounet(root, "find-best", name, "-c", configuration))
    assert json.loads((root / "results" / name / "inference.json").read_text())["configurations"] == [configuration]
    assert (raw / "imagesTs").is_dir() and any(p.name.endswith(ending) for p in (raw / "imagesTs").iterdir())


def test_run_chains_every_stage_and_continues(tmp_path):
    root = tmp_path / "root"
    raw = make_nifti_dataset(tmp_path / "elsewhere" / "Dataset203_Run", n_cases=5, shape=(16, 20, 18))
    before = {p: p.stat().st_mtime_ns for p in raw.rglob("*") if p.is_file()}
    result = ok(autounet(root, "run", str(raw), "--budget", "quick", "--folds", "0,1", "--device", "cpu"))
    assert "cross-validation" in result.stdout and "foreground Dice" in result.stdout
    results = root / "results" / raw.name
    # The raw data is verified once (fingerprinting does it), and the closing lines say where things are and
    # what to type next, with the dataset as the user gave it.
    assert (result.stdout + result.stderr).count("verify:") == 1
    assert f"training curves: {results / '3d_fullres' / 'fold_0' / 'progress.png'}" in result.stdout
    assert f"report: {results / 'report.html'}" in result.stdout and (results / "report.html").is_file()
    assert f"image(s) in imagesTs/: {results / 'predictions_imagesTs'}" in result.stdout
    assert f"autounet predict -i YOUR_IMAGES/ -o OUTPUT/ -d {raw.name}" in result.stdout
    assert f"autounet run {raw} --budget quick --folds 0,1,2,3,4" in result.stdout
    assert f"autounet run {raw} --budget 30m --folds 0,1" in result.stdout
    for fold in (0, 1):
        assert (results / "3d_fullres" / f"fold_{fold}" / "validation" / "summary.json").is_file()
    choice = json.loads((results / "inference.json").read_text())
    assert choice["configurations"] == ["3d_fullres"] and choice["folds"] == [0, 1]
    test_image, geometry = read_image([raw / "imagesTs" / "case_005_0000.nii.gz"])
    predicted, predicted_geometry = read_label(results / "predictions_imagesTs" / "case_005.nii.gz")
    assert predicted.shape == test_image.shape[1:] and predicted_geometry.matches(geometry) == []
    # The raw data is untouched, and a second run keeps the finished folds instead of retraining them.
    assert {p: p.stat().st_mtime_ns for p in raw.rglob("*") if p.is_file()} == before
    weights = (results / "3d_fullres" / "fold_0" / "model_final.safetensors").stat().st_mtime_ns
    ok(autounet(root, "run", str(raw), "--budget", "quick", "--folds", "0,1", "--device", "cpu", "--no-predict"))
    assert (results / "3d_fullres" / "fold_0" / "model_final.safetensors").stat().st_mtime_ns == weights


def test_run_stops_on_a_broken_dataset_with_one_sentence(tmp_path):
    root = tmp_path / "root"
    raw = make_nifti_dataset(tmp_path / "Dataset204_Broken", n_cases=3)
    (raw / "labelsTr" / "case_001.nii.gz").unlink()
    result = autounet(root, "run", str(raw), "--budget", "quick", "--folds", "0")
    assert result.returncode == 1
    assert "case_001" in result.stderr and "Traceback" not in result.stderr


def test_a_coarser_grid_plan_trains_and_predicts_in_the_original_geometry(tmp_path):
    """What ``plan --budget`` writes when a 2d network trades resolution for context (its own data folder)."""
    from autounet.planning.plans import load_plans, save_plans
    from autounet.planning.variants import coarser, narrower

    root = tmp_path / "root"
    raw = make_png_dataset(root / "raw" / "Dataset205_Coarse", n_cases=5)
    name = raw.name
    ok(autounet(root, "plan", name, "-c", "2d"))
    plans = load_plans(root / "preprocessed" / name)
    coarse = coarser(narrower(plans.configuration("2d")))
    assert coarse is not None and coarse.data_identifier == "2d_at_2x2"
    plans.configurations["2d"] = coarse
    save_plans(plans, root / "preprocessed" / name)

    ok(autounet(root, "preprocess", name, "-c", "2d"))
    cached = root / "preprocessed" / name / "2d_at_2x2"
    assert cached.is_dir() and not (root / "preprocessed" / name / "2d").exists()
    ok(autounet(root, "train", name, "-c", "2d", "--fold", "0", *TRAIN_FAST))
    out = tmp_path / "predictions"
    ok(autounet(root, "predict", "-i", str(raw / "imagesTr"), "-o", str(out), "-d", name, "-c", "2d", "--no-tta"))
    for label_file in sorted((raw / "labelsTr").iterdir()):
        predicted, geometry = read_label(out / label_file.name)
        reference, reference_geometry = read_label(label_file)
        assert predicted.shape == reference.shape and geometry.matches(reference_geometry) == []
