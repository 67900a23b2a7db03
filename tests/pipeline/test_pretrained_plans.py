"""Fine-tuning onto a dataset whose own plan differs from the model's: plan --pretrained-plans, then preprocess and
train --pretrained, through the CLI."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk
from safetensors.torch import load_file

from tests.conftest import make_nifti_dataset, write_dataset_json
from tests.pipeline.test_end_to_end import TRAIN_FAST, autounet, ok

pytestmark = pytest.mark.slow


def test_a_model_of_another_plan_is_fine_tuned_through_its_inherited_configuration(tmp_path):
    root = tmp_path / "root"
    source = make_nifti_dataset(root / "raw" / "Dataset221_Source", n_cases=4, shape=(16, 24, 20))
    target = make_nifti_dataset(root / "raw" / "Dataset222_Target", n_cases=4, shape=(24, 32, 28),
                                spacing=(2.0, 0.7, 0.7), seed=3)
    write_dataset_json(target, {"0": "MRI"}, {"background": 0, "organ": 1}, 4, ".nii.gz")  # another class count
    for path in (target / "labelsTr").iterdir():
        image = sitk.ReadImage(str(path))
        merged = sitk.GetImageFromArray((sitk.GetArrayFromImage(image) > 0).astype("uint8"))
        merged.CopyInformation(image)
        sitk.WriteImage(merged, str(path))
    ok(autounet(root, "plan", source.name, "-c", "3d_fullres", "--device", "cpu"))
    ok(autounet(root, "preprocess", source.name, "-c", "3d_fullres"))
    ok(autounet(root, "train", source.name, "-c", "3d_fullres", "--fold", "all", *TRAIN_FAST))
    model = root / "results" / source.name / "3d_fullres"

    # The target's own plan would not take the model's weights: the refusal says what to do.
    ok(autounet(root, "plan", target.name, "-c", "3d_fullres", "--device", "cpu"))
    ok(autounet(root, "preprocess", target.name, "-c", "3d_fullres"))
    own_plans = json.loads((root / "preprocessed" / target.name / "plans.json").read_text())
    refused = autounet(root, "train", target.name, "-c", "3d_fullres", "--fold", "all", "--pretrained", str(model),
                       *TRAIN_FAST)
    source_plans = json.loads((model / "fold_all" / "plans.json").read_text())["configurations"]["3d_fullres"]
    own_network = own_plans["configurations"]["3d_fullres"]["network"]
    assert own_network["features_per_stage"] != source_plans["network"]["features_per_stage"] or \
        own_network["strides"] != source_plans["network"]["strides"], "the test needs plans that differ"
    assert refused.returncode != 0 and "--pretrained-plans" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr

    result = ok(autounet(root, "plan", target.name, "-c", "3d_fullres", "--device", "cpu", "--pretrained-plans",
                         str(model)))
    name = "3d_fullres_from_Dataset221"
    assert name in result.stdout
    plans = json.loads((root / "preprocessed" / target.name / "plans.json").read_text())
    inherited = plans["configurations"][name]
    for key in ("spacing", "patch_size", "batch_size", "normalization", "resampling"):
        assert inherited[key] == source_plans[key], key
    assert inherited["network"] == {**source_plans["network"], "num_classes": 2}
    assert plans["configurations"]["3d_fullres"] == own_plans["configurations"]["3d_fullres"]  # untouched
    assert plans["extra"]["inherited"][name] == {"dataset": source.name, "configuration": "3d_fullres"}

    ok(autounet(root, "preprocess", target.name, "-c", name))
    result = ok(autounet(root, "train", target.name, "-c", name, "--fold", "all", "--pretrained", str(model),
                         *TRAIN_FAST))
    assert "segmentation head tensor(s) start afresh" in result.stdout + result.stderr
    tuned = load_file(str(root / "results" / target.name / name / "fold_all" / "model_final.safetensors"))
    start = load_file(str(model / "fold_all" / "model_final.safetensors"))
    assert tuned.keys() == start.keys()
    heads = [k for k in start if k.startswith("heads.")]
    assert all(tuned[k].shape != start[k].shape for k in heads if k.endswith("weight"))
    body = [k for k in start if not k.startswith("heads.") and start[k].is_floating_point()]
    # a few iterations move the weights only a little from the model's, far less than a fresh start would be
    moved = sum(float((tuned[k] - start[k]).norm()) for k in body) / sum(float(start[k].norm()) for k in body)
    assert moved < 0.5, moved

    two_channels = make_nifti_dataset(root / "raw" / "Dataset223_TwoChannels", n_cases=4, n_channels=2)
    refused = autounet(root, "plan", two_channels.name, "-c", "3d_fullres", "--device", "cpu",
                       "--pretrained-plans", str(model))
    assert refused.returncode != 0 and "takes 1 input channel(s), but Dataset223_TwoChannels has 2" in (
        refused.stdout + refused.stderr)
    assert "Traceback" not in refused.stderr
