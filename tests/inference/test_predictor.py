"""The Predictor API: fold ensembles, configuration ensembles, cascade, restoring to the original grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.dataset.spec import load_spec
from autounet.errors import MissingArtifactError, UserError
from autounet.inference.predictor import Predictor
from autounet.inference.restore import restore_all_probabilities, restore_labels_of
from autounet.io import Geometry, read_image
from autounet.preprocessing.pipeline import preprocess_case
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, make_fold, make_trained, plans_of


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_nifti_dataset(tmp_path_factory.mktemp("raw") / "Dataset100_Tiny", n_cases=2, n_test=1)


def _image(dataset: Path):
    return read_image(sorted((dataset / "imagesTr").glob("case_000_*.nii.gz")))


def test_predicts_labels_and_probabilities_in_the_original_grid(tmp_path, dataset):
    results = make_trained(tmp_path, dataset, [configuration(patch=(8, 16, 16))], folds=(0, 1))
    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu", step=1.0)
    assert len(predictor.models[0].networks) == 2
    image, geometry = _image(dataset)
    prediction = predictor.predict(image, geometry, probabilities=True)
    assert prediction.labels.shape == image.shape[1:]
    assert prediction.probabilities.shape == (3, *image.shape[1:])
    np.testing.assert_allclose(prediction.probabilities.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(prediction.labels, prediction.probabilities.argmax(0))
    labels_only = predictor.predict(image, geometry)
    np.testing.assert_array_equal(labels_only.labels, prediction.labels)
    assert labels_only.probabilities is None


def test_fold_ensemble_averages_the_folds(tmp_path, dataset):
    results = make_trained(tmp_path, dataset, [configuration()], folds=(0, 1))
    image, geometry = _image(dataset)
    both = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False)
    singles = [Predictor.from_model_folder(results / "3d_fullres" / f"fold_{f}", device="cpu", tta=False)
               for f in (0, 1)]
    expected = np.mean([p.predict(image, geometry, True).probabilities for p in singles], 0)
    np.testing.assert_allclose(both.predict(image, geometry, True).probabilities, expected, atol=1e-5)
    chosen = Predictor.from_model_folder(results / "3d_fullres", folds=[1], device="cpu", tta=False)
    np.testing.assert_allclose(chosen.predict(image, geometry, True).probabilities,
                               singles[1].predict(image, geometry, True).probabilities, atol=1e-6)


def test_resampled_configuration_labels_equal_argmax_of_restored_probabilities(tmp_path, dataset):
    """The streaming label route gives exactly the labels of the full probability restore."""
    results = make_trained(tmp_path, dataset, [configuration(spacing=(1.6, 1.3, 0.7))], folds=(0,))
    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False)
    image, geometry = _image(dataset)
    with_probabilities = predictor.predict(image, geometry, probabilities=True)
    labels = predictor.predict(image, geometry).labels
    assert labels.shape == image.shape[1:]
    np.testing.assert_array_equal(labels, with_probabilities.probabilities.argmax(0))


def test_configuration_ensemble_averages_restored_probabilities(tmp_path, dataset):
    configs = [configuration(), configuration("2d", is_2d=True)]
    results = make_trained(tmp_path, dataset, configs, folds=(0,))
    image, geometry = _image(dataset)
    ensemble = Predictor.from_model_folder(results, configurations=["3d_fullres", "2d"], device="cpu", tta=False)
    parts = [Predictor.from_model_folder(results / name, device="cpu", tta=False).predict(image, geometry, True)
             for name in ("3d_fullres", "2d")]
    result = ensemble.predict(image, geometry)
    mean = (parts[0].probabilities + parts[1].probabilities) / 2
    np.testing.assert_array_equal(result.labels, mean.argmax(0))


def test_cascade_feeds_the_first_stage_segmentation_as_extra_channels(tmp_path, dataset):
    lowres = configuration("3d_lowres", spacing=(2.0, 2.0, 2.0))
    cascade = configuration("3d_cascade_fullres", previous_stage="3d_lowres", extra_inputs=2)
    results = make_trained(tmp_path, dataset, [lowres, cascade], folds=(0,))
    predictor = Predictor.from_model_folder(results / "3d_cascade_fullres", device="cpu", tta=False)
    assert predictor.models[0].previous is not None
    seen = []
    network = predictor.models[0].networks[0]
    network.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    image, geometry = _image(dataset)
    prediction = predictor.predict(image, geometry)
    assert prediction.labels.shape == image.shape[1:]
    assert seen and set(seen) == {3}


def test_labels_restore_exactly_when_spacing_is_unchanged(dataset):
    image, geometry = _image(dataset)
    image[:, :2] = 0  # a zero border that preprocessing crops away
    image[:, :, -3:] = 0
    plan = configuration()
    plans = plans_of("Dataset100_Tiny", plan)
    _, _, properties = preprocess_case(image, geometry, None, plans, plan, "case")
    assert properties.shape_after_crop == properties.shape_after_resample != properties.original_shape
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, properties.shape_after_crop)
    one_hot = torch.from_numpy(np.eye(3, dtype=np.float32)[labels].transpose(3, 0, 1, 2).copy())
    spec = load_spec(dataset)
    restored = restore_labels_of(one_hot, properties, plan, spec)
    expected = np.zeros(properties.original_shape, np.uint8)
    expected[tuple(slice(a, b) for a, b in properties.crop_bbox)] = labels
    np.testing.assert_array_equal(restored, expected)
    np.testing.assert_array_equal(restore_all_probabilities(one_hot, properties, plan, spec).argmax(0), expected)


def test_logits_are_resampled_then_activated_when_restored_as_logits(dataset):
    """Models installed from nnU-Net resample the logits and take the softmax on the original grid, as nnU-Net
    does; autounet's own resample probabilities. Where the grid changes the two give different labels."""
    from autounet.preprocessing.pipeline import crop_box, restore_channel_in_crop

    image, geometry = _image(dataset)
    image[:, :2] = 0
    plan = configuration(spacing=(1.6, 0.7, 1.3))
    _, _, properties = preprocess_case(image, geometry, None, plans_of("Dataset100_Tiny", plan), plan, "case")
    assert properties.shape_after_crop != properties.shape_after_resample
    spec = load_spec(dataset)
    logits = torch.from_numpy(np.random.default_rng(1).normal(0, 3, (3, *properties.shape_after_resample))
                              .astype(np.float32))
    restored = np.stack([restore_channel_in_crop(channel, properties, plan) for channel in logits.numpy()])
    expected = np.zeros(properties.original_shape, np.uint8)
    expected[crop_box(properties)] = restored.argmax(0)
    np.testing.assert_array_equal(restore_labels_of(logits, properties, plan, spec, logits=True), expected)
    probabilities = restore_all_probabilities(logits, properties, plan, spec, logits=True)
    inside = (slice(None), *crop_box(properties))
    np.testing.assert_allclose(probabilities[inside], torch.softmax(torch.from_numpy(restored), 0).numpy(),
                               atol=1e-6)
    outside = np.ones(properties.original_shape, bool)
    outside[crop_box(properties)] = False
    assert outside.any() and (probabilities[0][outside] == 1).all() and (probabilities[1:, outside] == 0).all()
    of_probabilities = restore_labels_of(torch.softmax(logits, 0), properties, plan, spec)
    assert (of_probabilities != expected).any()


def test_wrong_channel_count_names_expected_and_found(tmp_path, dataset):
    results = make_trained(tmp_path, dataset, [configuration()], folds=(0,))
    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu")
    image, geometry = _image(dataset)
    with pytest.raises(UserError, match="2 channel.*trained with 1"):
        predictor.predict(np.concatenate([image, image]), geometry)


def test_fold_without_weights_is_refused(tmp_path, dataset):
    plans = plans_of("Dataset100_Tiny", configuration())
    folder = make_fold(tmp_path / "results", plans, "3d_fullres", 0, dataset / "dataset.json", checkpoints=("best",))
    with pytest.raises(MissingArtifactError, match="model_final.safetensors.*model_best"):
        Predictor.from_model_folder(folder, device="cpu")
    predictor = Predictor.from_model_folder(folder, checkpoint="best", device="cpu")
    assert len(predictor.models[0].networks) == 1
    with pytest.raises(MissingArtifactError, match="fold.*3 not trained"):
        Predictor.from_model_folder(folder.parent, folds=[3], device="cpu")


def test_two_dimensional_model_on_a_png_like_image(tmp_path):
    from tests.conftest import make_png_dataset

    raw = make_png_dataset(tmp_path / "raw" / "Dataset103_TinyRgb", n_cases=1, rgb=True, n_test=0)
    results = make_trained(tmp_path, raw, [configuration("2d", channels=3, classes=2, is_2d=True)], folds=(0,))
    predictor = Predictor.from_model_folder(results / "2d", device="cpu")
    image, geometry = read_image([raw / "imagesTr" / "img_000_0000.png"])
    assert isinstance(geometry, Geometry) and geometry.is_2d
    prediction = predictor.predict(image, geometry, probabilities=True)
    assert prediction.labels.shape == image.shape[1:]
    assert prediction.probabilities.shape == (2, *image.shape[1:])


def test_precision_choice(tmp_path, dataset):
    from autounet.inference.predictor import resolve_precision

    assert resolve_precision("float32", torch.device("cpu")) == torch.float32
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(UserError, match="--precision"):
        resolve_precision("int8", torch.device("cpu"))
    results = make_trained(tmp_path, dataset, [configuration()], folds=(0,))
    image, geometry = _image(dataset)
    exact = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False, precision="float32")
    mixed = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False, precision="bfloat16")
    assert exact.models[0].settings.compute_dtype == torch.float32
    assert mixed.models[0].settings.compute_dtype == torch.bfloat16
    a = exact.predict(image, geometry, True).probabilities
    b = mixed.predict(image, geometry, True).probabilities
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=0.1)


def test_predict_preprocessed_matches_predict_on_the_raw_image(tmp_path, dataset):
    results = make_trained(tmp_path, dataset, [configuration(spacing=(1.2, 1.0, 0.9))], folds=(0,))
    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu", tta=False)
    image, geometry = _image(dataset)
    trained = predictor.models[0].trained
    data, _, properties = preprocess_case(image, geometry, None, trained.plans, trained.plan, "case")
    from_raw = predictor.predict(image, geometry, probabilities=True)
    from_preprocessed = predictor.predict_preprocessed(data, properties, probabilities=True)
    np.testing.assert_array_equal(from_preprocessed.labels, from_raw.labels)
    np.testing.assert_allclose(from_preprocessed.probabilities, from_raw.probabilities, atol=1e-6)


def test_cascade_whose_network_lacks_the_extra_channels_is_a_clear_error(tmp_path, dataset):
    lowres = configuration("3d_lowres", spacing=(2.0, 2.0, 2.0))
    cascade = configuration("3d_cascade_fullres", previous_stage="3d_lowres")
    results = make_trained(tmp_path, dataset, [lowres, cascade], folds=(0,))
    predictor = Predictor.from_model_folder(results / "3d_cascade_fullres", device="cpu", tta=False)
    image, geometry = _image(dataset)
    with pytest.raises(UserError, match="1 input channels, but needs 3"):
        predictor.predict(image, geometry)


def test_folds_still_training_are_left_out_unless_asked_for(tmp_path, dataset):
    results = make_trained(tmp_path, dataset, [configuration()], folds=(0, 1))
    (results / "3d_fullres" / "fold_1" / "model_final.safetensors").unlink()
    predictor = Predictor.from_model_folder(results / "3d_fullres", device="cpu")
    trained = predictor.models[0].trained
    assert [f.fold for f in trained.folds] == ["0"]
    assert trained.unfinished == [results / "3d_fullres" / "fold_1"]
    with pytest.raises(MissingArtifactError, match="fold_1: has no weights"):
        Predictor.from_model_folder(results / "3d_fullres", folds=[0, 1], device="cpu")
