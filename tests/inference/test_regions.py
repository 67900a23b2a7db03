"""Region-based models (dataset.json labels given as lists): sigmoid per region, restored to label values in the
order of regions_class_order, in the input's geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from autounet.dataset.spec import DatasetSpec
from autounet.inference.predictor import Predictor
from autounet.inference.probabilities import to_labels
from autounet.io import read_image
from autounet.network.loss import region_targets
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, make_trained

REGIONS = {"background": 0, "whole": [1, 2], "core": 2}


def _spec() -> DatasetSpec:
    return DatasetSpec("d", {0: "MRI"}, REGIONS, 1, ".nii.gz", regions_class_order=[1, 2])


def test_region_probabilities_become_labels_later_regions_winning():
    # voxels: none, whole only, whole and core, core only (inconsistent: the later region still wins)
    probabilities = np.array([[0.1, 0.9, 0.9, 0.2], [0.3, 0.4, 0.8, 0.7]], np.float32)
    assert to_labels(probabilities, _spec()).tolist() == [0, 1, 2, 2]


def test_training_targets_and_restored_labels_round_trip():
    labels = torch.tensor([0, 1, 2, 2, 1, 0]).reshape(1, 1, 6)
    targets = region_targets(labels, [[1, 2], [2]])
    assert targets[0].tolist() == [[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]]
    assert to_labels(targets[0], _spec()).tolist() == labels.flatten().tolist()


@pytest.mark.parametrize("head_bias, expected", [([5.0, -5.0], 1), ([5.0, 5.0], 2), ([-5.0, -5.0], 0)])
def test_a_region_model_predicts_region_values_in_the_input_geometry(tmp_path, head_bias, expected):
    """A network whose output is its head's bias (all other weights zero) makes every voxel the same regions;
    the label written, on a configuration resampled away from the image's spacing, is the value they mean."""
    raw = make_nifti_dataset(tmp_path / "raw" / "Dataset120_Regions", n_cases=1, n_test=1, spacing=(2.0, 1.0, 1.0))
    spec = json.loads((raw / "dataset.json").read_text())
    spec.update(labels=REGIONS, regions_class_order=[1, 2])
    (raw / "dataset.json").write_text(json.dumps(spec))
    results = make_trained(tmp_path / "root", raw, [configuration(classes=2, spacing=(1.5, 1.25, 1.0))], folds=(0,))
    weights_file = results / "3d_fullres" / "fold_0" / "model_final.safetensors"
    weights = {name: torch.zeros_like(value) for name, value in load_file(str(weights_file)).items()}
    weights["heads.0.bias"] = torch.tensor(head_bias)
    save_file(weights, str(weights_file))

    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False)
    image, geometry = read_image([raw / "imagesTs" / "case_001_0000.nii.gz"])
    labels = predictor.predict(image, geometry, case_id="case_001").labels
    assert labels.shape == image.shape[1:]
    assert set(np.unique(labels)) == {expected}
