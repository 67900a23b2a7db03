"""Prediction in bounded memory: the estimate, the choice of keeping per-class outputs on disk, and that the label
maps do not change with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import UserError
from autounet.inference.memory import (SCRATCH_PREFIX, MemoryPolicy, PredictionMemory, parse_memory,
                                       remove_scratch_leftovers)
from autounet.inference.predictor import Predictor
from autounet.inference.probabilities import to_labels, to_probabilities, to_probabilities_
from autounet.inference.sliding_window import WindowSettings, predict_logits
from autounet.io import read_image
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, make_trained


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_nifti_dataset(tmp_path_factory.mktemp("raw") / "Dataset100_Tiny", n_cases=2, n_test=1)


def test_sizes_parse_and_bad_ones_are_refused():
    assert parse_memory("8G") == 8 * 2**30 and parse_memory("512m") == 512 * 2**20 and parse_memory("100") == 100
    assert parse_memory("2GiB") == 2 * 2**30 and parse_memory("0.5T") == 2**39
    for bad in ("lots", "8X", "-1G", ""):
        with pytest.raises(UserError, match="is not a size"):
            parse_memory(bad)


def test_the_estimate_grows_with_classes_only_while_outputs_stay_in_memory():
    sizes = dict(original_shape=(300, 256, 256), cropped_shape=(300, 256, 256), preprocessed_shape=(200, 205, 205),
                 channels=1)
    few, many = PredictionMemory(**sizes, outputs=3), PredictionMemory(**sizes, outputs=30)
    assert many.per_class_bytes() == 10 * few.per_class_bytes() == 10 * 3 * 200 * 205 * 205 * 4
    more = PredictionMemory(**sizes, outputs=60)  # past preprocessing's peak, each class adds its K x N share
    assert more.peak_bytes(on_disk=False) - many.peak_bytes(on_disk=False) == more.per_class_bytes() - \
        many.per_class_bytes()
    assert many.peak_bytes(on_disk=False) > few.peak_bytes(on_disk=False)
    assert many.peak_bytes(on_disk=True) == few.peak_bytes(on_disk=True)
    folds = PredictionMemory(**sizes, outputs=30, summed=2)
    assert folds.per_class_bytes() == 2 * many.per_class_bytes()
    policy = MemoryPolicy(limit_bytes=many.peak_bytes(on_disk=False) - 1)
    assert policy.needs_disk(many) and not policy.needs_disk(few)


def test_in_place_conversions_equal_the_plain_ones(monkeypatch):
    monkeypatch.setattr("autounet.inference.probabilities.CHUNK_VOXELS", 10)  # many slabs on a small array
    logits = torch.randn(4, 7, 3, 5)
    for regions in (False, True):
        torch.testing.assert_close(to_probabilities_(logits.clone(), regions), to_probabilities(logits, regions))
    from autounet.dataset.spec import DatasetSpec
    spec = DatasetSpec("d", {0: "CT"}, {"background": 0, "a": 1, "b": 2, "c": 5}, 1, ".nii.gz")
    np.testing.assert_array_equal(to_labels(logits, spec), np.array([0, 1, 2, 5])[logits.argmax(0).numpy()])


def test_logits_summed_on_disk_equal_those_summed_in_memory(tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 3, 3, padding=1).eval()
    image = np.random.default_rng(0).normal(size=(1, 13, 20, 9)).astype(np.float32)
    settings = WindowSettings((8, 8, 8), (4, 4, 4), mirror=True)
    in_memory = predict_logits(network, image, 3, settings)
    on_disk = predict_logits(network, image, 3, settings, scratch=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".f32"]  # the memory map lives in the scratch folder
    torch.testing.assert_close(on_disk, in_memory, atol=1e-6, rtol=0)


@pytest.mark.parametrize("spacing", [None, (1.6, 1.3, 0.7)])
def test_labels_are_the_same_with_outputs_on_disk(tmp_path, dataset, spacing, capsys):
    """A limit of one byte sends every case's outputs to disk; labels and probabilities do not change, and the
    scratch folder is gone afterwards."""
    plan = configuration(spacing=spacing) if spacing else configuration()
    results = make_trained(tmp_path, dataset, [plan], folds=(0, 1))
    image, geometry = read_image(sorted((dataset / "imagesTr").glob("case_000_*.nii.gz")))
    in_memory = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False)
    scratch_root = tmp_path / "scratch_root"
    on_disk = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False,
                                          memory=MemoryPolicy(limit_bytes=1, scratch_root=scratch_root))
    expected, got = in_memory.predict(image, geometry), on_disk.predict(image, geometry)
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert "keeping them on disk" in capsys.readouterr().err
    assert list(scratch_root.iterdir()) == []
    np.testing.assert_allclose(on_disk.models[0].predict_probabilities(image, geometry, "case"),
                               in_memory.models[0].predict_probabilities(image, geometry, "case"), atol=1e-6)


def test_scratch_folders_of_a_killed_prediction_are_removed(tmp_path):
    (tmp_path / f"{SCRATCH_PREFIX}abc").mkdir()
    (tmp_path / f"{SCRATCH_PREFIX}abc" / "logits-1.f32").write_bytes(b"\0" * 64)
    (tmp_path / "case_000.nii.gz").write_bytes(b"kept")
    assert remove_scratch_leftovers(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["case_000.nii.gz"]
