"""preprocess_case and its inverses restore_labels / restore_probabilities; class locations."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import UserError
from autounet.io.geometry import Geometry
from autounet.preprocessing.pipeline import (class_locations, preprocess_case, restore_labels,
                                             restore_probabilities)
from tests.conftest import synthetic_volume
from tests.preprocessing.plans_factory import make_configuration, make_plans


def padded_case(seed=0, shape=(16, 20, 18), pad=((2, 3), (4, 1), (0, 5))):
    """A synthetic case surrounded by a zero border (so cropping has work to do)."""
    image, label = synthetic_volume(np.random.default_rng(seed), shape)
    return np.pad(image, pad)[None], np.pad(label, pad)


def test_crop_normalise_and_outside_mask_marking():
    image, label = padded_case()
    config = make_configuration(normalization=("zscore",), use_mask=(True,))
    data, seg, props = preprocess_case(image, Geometry((1.0, 1.0, 1.0)), label, make_plans(config), config, "c0")
    assert data.dtype == np.float32 and seg.dtype == np.int8
    assert data.shape == (1, 16, 20, 18) and seg.shape == (1, 16, 20, 18)
    assert props.crop_bbox == [[2, 18], [4, 24], [0, 18]]
    assert props.original_shape == [21, 25, 23] and props.shape_after_crop == [16, 20, 18]
    inside = data[0] != 0
    assert abs(data[0].mean()) < 1e-4  # the synthetic image is nonzero everywhere inside the crop
    assert set(np.unique(seg)) <= {0, 1, 2}  # no -1: every cropped voxel is inside the nonzero mask
    assert inside.all()


def test_background_outside_the_nonzero_mask_is_minus_one():
    image = np.zeros((1, 10, 10, 10), np.float32)
    image[0, 2:8, 2:8, 2:8] = 5.0
    image[0, 2:4, 2:4, 2:4] = 0.0  # a corner notch: inside the box, outside the mask
    image[0, 5, 5, 5] = 9.0
    label = np.zeros((10, 10, 10), np.uint8)
    label[5, 5, 5] = 1
    config = make_configuration()
    _, seg, props = preprocess_case(image, Geometry((1.0, 1.0, 1.0)), label, make_plans(config), config)
    assert props.crop_bbox == [[2, 8]] * 3
    assert np.all(seg[0, :2, :2, :2] == -1) and seg[0, 3, 3, 3] == 1 and (seg == -1).sum() == 8


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.5, 0.8, 0.9)])
def test_restore_labels_gives_the_original_label_map_back_when_spacing_is_unchanged(spacing):
    image, label = padded_case(seed=3)
    config = make_configuration(spacing=spacing)
    geometry = Geometry(spacing, origin=(1.0, 2.0, 3.0))
    _, seg, props = preprocess_case(image, geometry, label, make_plans(config), config, "c3")
    restored = restore_labels(seg[0], props, config)
    assert restored.shape == label.shape and np.array_equal(restored, label)
    assert props.geometry == geometry


def test_restore_after_resampling_is_close_to_the_original():
    image, label = padded_case(seed=4, shape=(20, 24, 22))
    config = make_configuration(spacing=(0.7, 1.4, 1.2))
    _, seg, props = preprocess_case(image, Geometry((1.0, 1.0, 1.0)), label, make_plans(config), config)
    assert props.shape_after_resample == [29, 17, 18] and seg.shape == (1, 29, 17, 18)
    restored = restore_labels(seg[0], props, config)
    assert restored.shape == label.shape
    assert np.mean(restored == label) > 0.97
    assert set(np.unique(restored)) == set(np.unique(label))


def test_restore_probabilities_resamples_and_uncrops():
    image, label = padded_case(seed=5)
    config = make_configuration(spacing=(1.3, 0.9, 1.1))
    _, seg, props = preprocess_case(image, Geometry((1.0, 1.0, 1.0)), label, make_plans(config), config)
    onehot = np.stack([(np.maximum(seg[0], 0) == k) for k in range(3)]).astype(np.float32)
    probabilities = restore_probabilities(onehot, props, config)
    assert probabilities.shape == (3, *label.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)  # linear interpolation keeps the sum
    outside = np.ones(label.shape, bool)
    outside[tuple(slice(lo, hi) for lo, hi in props.crop_bbox)] = False
    assert np.all(probabilities[0][outside] == 1) and np.all(probabilities[1:, outside] == 0)
    assert np.mean(probabilities.argmax(0) == label) > 0.97
    with pytest.raises(ValueError, match="expected the preprocessed shape"):
        restore_probabilities(onehot[:, 1:], props, config)


def test_2d_configuration_keeps_each_case_z_spacing():
    image, label = padded_case(seed=6, shape=(6, 20, 18))
    config = make_configuration(name="2d", spacing=(123.0, 0.5, 0.5), is_2d=True)
    data, seg, props = preprocess_case(image, Geometry((2.0, 1.0, 1.0)), label, make_plans(config), config)
    assert props.target_spacing == [2.0, 0.5, 0.5]
    assert data.shape == (1, 6, 40, 36) and seg.shape == (1, 6, 40, 36)


def test_2d_images_multi_channel_test_case_without_labels():
    rng = np.random.default_rng(7)
    image = rng.uniform(1, 255, (3, 1, 30, 40)).astype(np.float32)
    config = make_configuration(name="2d", spacing=(999.0, 1.0, 0.5), is_2d=True,
                                normalization=("rgb_to_0_1",) * 3, use_mask=(False,) * 3)
    data, seg, props = preprocess_case(image, Geometry((999.0, 1.0, 1.0), is_2d=True), None,
                                       make_plans(config), config)
    assert seg is None and data.shape == (3, 1, 30, 80)
    # 0..1 colour values, resampled with a cubic spline (which may overshoot a little on noise)
    np.testing.assert_allclose(data.mean(axis=(1, 2, 3)), image.mean(axis=(1, 2, 3)) / 255, atol=0.01)


def test_mismatched_label_shape_is_a_user_error():
    image, label = padded_case()
    config = make_configuration()
    with pytest.raises(UserError, match="label shape"):
        preprocess_case(image, Geometry((1.0, 1.0, 1.0)), label[1:], make_plans(config), config, "bad")


def test_class_locations_are_reproducible_and_inside_their_class(monkeypatch):
    import autounet.preprocessing.pipeline as pipeline

    _, label = padded_case(seed=8)
    seg = label.astype(np.int8)[None]
    monkeypatch.setattr(pipeline, "LOCATIONS_PER_CLASS", 50)
    first = class_locations(seg, [1, 2, 5], case_id="x")
    again = class_locations(seg, [1, 2, 5], case_id="x")
    other = class_locations(seg, [1, 2, 5], case_id="y")
    assert set(first) == {1, 2, 5} and first[5].shape == (0, 3)
    for k in (1, 2):
        assert np.array_equal(first[k], again[k])
        assert len(first[k]) == min(50, int((label == k).sum()))
        assert np.all(label[tuple(first[k].T)] == k)
    assert not np.array_equal(first[1], other[1])
    assert set(class_locations(seg)) == {1, 2}


def test_anisotropic_case_round_trip_is_exact_for_whole_slice_factors():
    image, label = padded_case(seed=9, shape=(6, 20, 18))
    config = make_configuration(spacing=(2.5, 1.0, 1.0))
    data, seg, props = preprocess_case(image, Geometry((5.0, 1.0, 1.0)), label, make_plans(config), config)
    assert data.shape[1] == 2 * props.shape_after_crop[0]
    # nearest neighbour across the thick slices: each one is repeated, never blended
    assert np.array_equal(seg[0], np.repeat(seg[0, ::2], 2, axis=0))
    assert np.array_equal(restore_labels(seg[0], props, config), label)
