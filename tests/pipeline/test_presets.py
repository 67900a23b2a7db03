"""A residual-encoder preset end to end through the CLI: plan, preprocess, train, predict, export."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from safetensors.torch import load_file

from autounet.io import read_label
from tests.conftest import make_nifti_dataset
from tests.pipeline.test_end_to_end import TRAIN_FAST, autounet, ok

pytestmark = pytest.mark.slow


def test_resenc_preset_plans_trains_predicts_and_exports(tmp_path):
    root = tmp_path / "root"
    raw = make_nifti_dataset(root / "raw" / "Dataset211_ResEnc", n_cases=4, shape=(16, 24, 20))
    name, configuration = raw.name, "3d_fullres_resenc-m"

    result = ok(autounet(root, "plan", name, "-c", "3d_fullres", "--preset", "resenc-m", "--device", "cpu"))
    assert "preset resenc-m: planning for its 11 GB target" in result.stdout
    assert "residual blocks" in result.stdout
    plans = json.loads((root / "preprocessed" / name / "plans.json").read_text())
    assert plans["preset"] == "resenc-m" and plans["memory_budget_gb"] == 11.0
    network = plans["configurations"][configuration]["network"]
    assert network["architecture"] == "residual_encoder"
    assert network["n_conv_per_stage"][:3] == [1, 3, 4] and set(network["n_conv_per_stage_decoder"]) == {1}

    ok(autounet(root, "preprocess", name, "-c", configuration))
    ok(autounet(root, "train", name, "--fold", "0", *TRAIN_FAST))  # the preset's 3d_fullres by default
    fold = root / "results" / name / configuration / "fold_0"
    weights = load_file(str(fold / "model_final.safetensors"))
    # the checkpoint holds the residual encoder's blocks (stage 2 has four, each with two convolutions)
    assert any(".3.conv2." in key for key in weights), sorted(weights)[:20]

    out = tmp_path / "predictions"
    ok(autounet(root, "predict", "-i", str(raw / "imagesTr"), "-o", str(out), "-d", name, "-c", configuration,
                "-f", "0", "--no-tta"))
    for label_file in sorted((raw / "labelsTr").iterdir()):
        predicted, _ = read_label(out / label_file.name)
        assert predicted.shape == read_label(label_file)[0].shape and set(np.unique(predicted)) <= {0, 1, 2}

    archive = tmp_path / "model.zip"
    ok(autounet(root, "export-model", name, "-o", str(archive), "-c", configuration, "-f", "0"))
    with zipfile.ZipFile(archive) as packed:
        plans_name = next(n for n in packed.namelist() if n.endswith("plans.json"))
        exported = json.loads(packed.read(plans_name))
    assert exported["preset"] == "resenc-m"
    assert exported["configurations"][configuration]["network"]["architecture"] == "residual_encoder"


def test_run_takes_the_preset_to_planning(tmp_path):
    root = tmp_path / "root"
    raw = make_nifti_dataset(tmp_path / "elsewhere" / "Dataset212_RunPreset", n_cases=4, shape=(16, 20, 18))
    result = autounet(root, "run", str(raw), "--preset", "resenc-s", "--folds", "0", "--device", "cpu")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--preset must be one of default, resenc-m, resenc-l, resenc-xl, not 'resenc-s'" in (result.stdout
                                                                                                 + result.stderr)
