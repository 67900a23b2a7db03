"""The 3d_lowres -> 3d_cascade_fullres path: planning, training on cross-validation predictions, predicting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from autounet.dataset.spec import DatasetSpec
from autounet.errors import MissingArtifactError, UserError
from autounet.inference.predictor import Predictor
from autounet.io import read_image, read_label
from autounet.planning.configurations import plan_configurations
from autounet.planning.plans import load_plans, save_plans
from autounet.preprocessing.pipeline import labels_on_grid, one_hot_labels
from autounet.preprocessing.store import CaseStore
from autounet.training import train_fold
from autounet.training.batches import BatchKey, BatchMaker, BatchRecipe
from autounet.training.splits import load_or_create_splits
from tests.cascade.helpers import make_cascade_root, tiny_config
from tests.conftest import REPO
from tests.planning.fingerprints import make_fingerprint


def test_cascade_network_takes_one_extra_channel_per_foreground_label():
    fingerprint = make_fingerprint((96, 96, 96), (1.0, 1.0, 1.0), 10)
    plans = plan_configurations(fingerprint, num_classes=3, budget_gb=1.6, names=["3d_fullres", "3d_lowres"])
    full, cascade = plans["3d_fullres"], plans["3d_cascade_fullres"]
    assert full.network.in_channels == 1 and cascade.network.in_channels == 1 + 2
    assert cascade.previous_stage == "3d_lowres" and cascade.data_identifier == "3d_fullres"
    assert cascade.patch_size == full.patch_size and cascade.network.strides == full.network.strides
    regions = plan_configurations(fingerprint, num_classes=3, budget_gb=1.6, names=["3d_fullres", "3d_lowres"],
                                  previous_stage_channels=3)
    assert regions["3d_cascade_fullres"].network.in_channels == 4


def test_predicted_foreground_values_of_labels_and_regions():
    plain = DatasetSpec("d", {0: "MRI"}, {"background": 0, "a": 1, "b": 2, "ignore": 3}, 1, ".nii.gz")
    assert plain.predicted_foreground_values == [1, 2]
    regions = DatasetSpec("d", {0: "MRI"}, {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": [3]}, 1,
                          ".nii.gz", regions_class_order=[1, 2, 3])
    assert regions.predicted_foreground_values == [1, 2, 3]


def test_cascade_without_lowres_predictions_names_the_folds_to_train(tmp_path):
    location = make_cascade_root(tmp_path / "root")
    with pytest.raises(MissingArtifactError, match=r"train 3d_lowres fold\(s\) 0, 1, 2 first"):
        train_fold(location, "3d_cascade_fullres", 0, tiny_config())
    train_fold(location, "3d_lowres", 1, tiny_config())
    with pytest.raises(MissingArtifactError, match=r"fold\(s\) 0, 2 first"):
        train_fold(location, "3d_cascade_fullres", 0, tiny_config())


def test_cascade_with_too_few_input_channels_is_refused(tmp_path):
    location = make_cascade_root(tmp_path / "root")
    plans = load_plans(location.preprocessed)
    plans.configurations["3d_cascade_fullres"].network.in_channels = 1
    save_plans(plans, location.preprocessed)
    with pytest.raises(UserError, match="has a network with 1 input channels, but needs 3"):
        train_fold(location, "3d_cascade_fullres", 0, tiny_config())


def _autounet(root, *args):
    env = {**os.environ, "AUTOUNET_HOME": str(root), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "autounet", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_lowres_folds_then_cascade_train_and_predict(tmp_path):
    root = tmp_path / "root"
    location = make_cascade_root(root)
    for fold in range(3):
        train_fold(location, "3d_lowres", fold, tiny_config())
    fold_dir = train_fold(location, "3d_cascade_fullres", 0, tiny_config())
    assert (fold_dir / "model_final.safetensors").is_file()
    assert len(list((fold_dir / "validation").glob("*.nii.gz"))) == 1

    # The cache holds each case's lowres CV prediction on the fullres grid, as inference computes it.
    store = CaseStore(location.preprocessed / "3d_fullres")
    case_id = store.case_ids()[0]
    cached = store.load_previous_stage(case_id, mmap=False)
    properties = store.load_properties(case_id)
    assert cached.dtype == np.int8 and list(cached.shape) == [1, *properties.shape_after_resample]
    holder = next(s for s in load_or_create_splits(location.preprocessed, store.case_ids()) if case_id in s.val)
    fold = load_or_create_splits(location.preprocessed, store.case_ids()).index(holder)
    lowres_file = location.results / "3d_lowres" / f"fold_{fold}" / "validation" / f"{case_id}.nii.gz"
    image, geometry = read_image([location.raw / "imagesTr" / f"{case_id}_0000.nii.gz"])
    lowres_labels, _ = read_label(lowres_file)
    plan = load_plans(location.preprocessed).configuration("3d_cascade_fullres")
    assert np.array_equal(cached, labels_on_grid(lowres_labels, image, properties, plan))
    predictor = Predictor.from_model_folder(location.results / "3d_cascade_fullres", device="cpu",
                                            previous_folds=[fold])
    inputs, _ = predictor.models[0]._preprocess(image, geometry, case_id)
    assert inputs.shape[0] == 3
    assert np.array_equal(inputs[1:], one_hot_labels(cached[0], [1, 2]))

    # The batches carry the one-hot previous stage as channels 1 and 2, augmented with the labels.
    recipe = BatchRecipe(store.folder, store.case_ids(), store.case_ids(), [16, 16, 16], 2, 0.5, True, 0,
                         previous_stage_values=[1, 2])
    batch = BatchMaker(recipe).make(BatchKey("train", 0, 0))
    assert batch.images.shape == (2, 3, 16, 16, 16) and batch.labels.shape == (2, 1, 16, 16, 16)
    assert set(np.unique(batch.images[:, 1:])) <= {0.0, 1.0} and batch.images[:, 1:].sum(axis=1).max() <= 1

    out = tmp_path / "predictions"
    _autounet(root, "predict", "-i", str(location.raw / "imagesTs"), "-o", str(out), "-d", location.name,
              "-c", "3d_cascade_fullres", "--no-tta", "--device", "cpu")
    for image_file in sorted((location.raw / "imagesTs").iterdir()):
        written = out / image_file.name.replace("_0000.nii.gz", ".nii.gz")
        labels, written_geometry = read_label(written)
        original, original_geometry = read_image([image_file])
        assert labels.shape == original.shape[1:] and written_geometry.matches(original_geometry) == []
        assert set(np.unique(labels)) <= {0, 1, 2}

    _autounet(root, "find-best", location.name, "-c", "3d_lowres", "-c", "3d_cascade_fullres")
    choice = json.loads((location.results / "inference.json").read_text())
    assert set(choice["configurations"]) <= {"3d_lowres", "3d_cascade_fullres"}


def test_run_trains_the_first_stage_on_every_fold_before_the_cascade(tmp_path):
    from autounet.pipeline import folds_to_train, with_previous_stages

    location = make_cascade_root(tmp_path / "root")
    plans = load_plans(location.preprocessed)
    names = with_previous_stages(["3d_cascade_fullres"], plans)
    assert names == ["3d_lowres", "3d_cascade_fullres"]
    assert with_previous_stages(["3d_fullres", "3d_lowres"], plans) == ["3d_fullres", "3d_lowres"]
    assert folds_to_train(location, plans, "3d_lowres", names, [0]) == [0, 1, 2]
    assert folds_to_train(location, plans, "3d_cascade_fullres", names, [0]) == [0]


def test_exporting_a_cascade_takes_its_first_stage_along(tmp_path):
    from autounet.inference.export import export_model, install_model

    location = make_cascade_root(tmp_path / "root")
    for configuration in ("3d_lowres", "3d_cascade_fullres"):
        fold_dir = location.results / configuration / "fold_0"
        fold_dir.mkdir(parents=True)
        save_plans(load_plans(location.preprocessed), fold_dir)
        (fold_dir / "training_config.json").write_text(json.dumps({"configuration": configuration, "fold": 0}))
        (fold_dir / "dataset.json").write_text((location.raw / "dataset.json").read_text())
        (fold_dir / "model_final.safetensors").write_bytes(b"weights")
    manifest = export_model(location.results, tmp_path / "model.zip", ["3d_cascade_fullres"])
    assert manifest.configurations == ["3d_lowres", "3d_cascade_fullres"]
    install_model(tmp_path / "model.zip", tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / location.name / "3d_lowres" / "fold_0" / "model_final.safetensors").is_file()


def test_perturbed_previous_stage_stays_one_hot_and_is_reproducible():
    from autounet.training.previous_stage import perturb_one_hot

    seg = np.zeros((12, 14, 14), np.int16)
    seg[2:9, 3:10, 3:10] = 1
    seg[2:9, 3:10, 7:10] = 2
    seg[10, 12, 12] = 1  # a one-voxel component
    one_hot = one_hot_labels(seg, [1, 2])
    outputs = [perturb_one_hot(one_hot, np.random.default_rng(seed)) for seed in range(20)]
    for out in outputs:
        assert out.shape == one_hot.shape and set(np.unique(out)) <= {0.0, 1.0} and out.sum(axis=0).max() <= 1
    changed = [not np.array_equal(out, one_hot) for out in outputs]
    assert any(changed) and not all(changed)
    assert np.array_equal(perturb_one_hot(one_hot, np.random.default_rng(3)), outputs[3])
