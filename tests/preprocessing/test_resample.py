"""Resampling: accuracy on analytic volumes, label safety, anisotropic handling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autounet.planning.plans import ResamplingPlan
from autounet.preprocessing.resample import (linear_along, new_shape_for, resample_image, resample_labels,
                                             resample_volume, separate_axis)

PLAN = ResamplingPlan()


def analytic(shape, spacing):
    """A smooth function sampled at voxel centres of a grid with ``spacing`` (physical extent shape*spacing)."""
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return (np.sin(z / 5.0) + np.cos(y / 6.0) * np.sin(x / 7.0 + 0.3)).astype(np.float32)


def blobs(shape, n_labels, seed=0):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    edges = np.quantile(field, np.linspace(0, 1, n_labels + 1)[1:-1])
    return np.digitize(field, edges).astype(np.int8)


def test_new_shape_keeps_extent():
    assert new_shape_for((10, 20, 30), (2.0, 1.0, 0.5), (1.0, 2.0, 0.5)) == [20, 10, 30]


def test_spline_overshoot_is_clipped_to_the_input_range():
    step = np.zeros((4, 12, 12), np.float32)
    step[:, :, 6:] = 100.0
    out = resample_image(step[None], (1, 1, 1), (0.5, 0.3, 0.3), PLAN)
    assert out.min() == 0.0 and out.max() == 100.0


def test_analytic_volume_forward_matches_function_and_round_trip_is_close():
    spacing, target = (1.0, 1.0, 1.0), (0.7, 1.3, 0.9)
    original = analytic((30, 40, 36), spacing)
    up = resample_image(original[None], spacing, target, PLAN)
    assert up.shape[1:] == tuple(new_shape_for(original.shape, spacing, target))
    expected = analytic(up.shape[1:], [o * s / n for o, s, n in zip(original.shape, spacing, up.shape[1:])])
    interior = (slice(3, -3),) * 3
    assert np.abs(up[0][interior] - expected[interior]).max() < 0.02
    back = resample_image(up, target, spacing, PLAN, new_shape=original.shape)
    assert back.shape[1:] == original.shape
    assert np.abs(back[0][interior] - original[interior]).max() < 0.02


def test_unchanged_spacing_is_identity():
    image = analytic((5, 6, 7), (1, 1, 1))[None]
    assert np.array_equal(resample_image(image, (1, 1, 1), (1, 1, 1), PLAN), image)


def test_linear_along_matches_scipy_zoom_order_1():
    array = np.random.default_rng(0).normal(size=(9, 13, 5)).astype(np.float32)
    for axis, new in ((0, 20), (1, 6), (2, 11)):
        factors = [1.0, 1.0, 1.0]
        factors[axis] = new / array.shape[axis]
        expected = ndimage.zoom(array, factors, order=1, mode="nearest", grid_mode=True)
        np.testing.assert_allclose(linear_along(array, axis, new), expected, atol=1e-5)


@pytest.mark.parametrize("spacing,target", [((1, 1, 1), (0.6, 0.8, 0.7)), ((1, 1, 1), (1.7, 2.1, 1.4)),
                                            ((4, 1, 1), (1.5, 1.1, 0.9)), ((1, 1, 1), (1, 1.5, 0.5))])
def test_labels_keep_their_set_of_values(spacing, target):
    labels = blobs((20, 24, 22), 4)
    labels[labels == 0] = -1  # the 'outside the mask' value takes part like any other
    out = resample_labels(labels, spacing, target, PLAN)
    assert out.dtype == labels.dtype
    assert out.shape == tuple(new_shape_for(labels.shape, spacing, target))
    assert set(np.unique(out)) <= set(np.unique(labels))
    if all(t <= s for s, t in zip(spacing, target)):  # upsampling keeps every label
        assert set(np.unique(out)) == set(np.unique(labels))


def test_labels_upsample_then_back_is_nearly_lossless():
    labels = blobs((16, 20, 18), 3, seed=1)
    up = resample_labels(labels, (1, 1, 1), (0.5, 0.5, 0.5), PLAN)
    back = resample_labels(up, (0.5, 0.5, 0.5), (1, 1, 1), PLAN, new_shape=labels.shape)
    assert np.mean(back == labels) > 0.97


def test_labels_chunked_equals_unchunked(monkeypatch):
    import autounet.preprocessing.resample as resample

    labels = blobs((12, 15, 14), 3, seed=2)
    whole = resample_labels(labels, (1, 1, 1), (0.45, 0.8, 1.3), PLAN)
    monkeypatch.setattr(resample, "LABEL_CHUNK_VOXELS", 50)
    assert np.array_equal(resample_labels(labels, (1, 1, 1), (0.45, 0.8, 1.3), PLAN), whole)


def test_separate_axis_rules():
    assert separate_axis((1, 1, 1), (1, 1, 1), 3) is None
    assert separate_axis((2.5, 1, 1), (2.5, 1, 1), 3) is None
    assert separate_axis((5, 1, 1), (2, 1, 1), 3) == 0
    assert separate_axis((1, 1, 1), (1, 4, 1), 3) == 1  # the target decides when the source is isotropic
    assert separate_axis((4, 4, 1), (4, 4, 1), 3) is None  # two coarse axes: no single through-plane axis
    assert separate_axis((999, 1, 1), (999, 0.5, 0.5), 3) == 0  # 2D images


def test_anisotropic_axis_is_resampled_with_nearest_neighbour():
    image = analytic((6, 20, 20), (5, 1, 1))
    out = resample_volume(image, (12, 20, 20), 3, 0, axis=0)
    # nearest along z, in-plane unchanged: every output slice is one of the input slices, each used twice
    assert all(any(np.array_equal(o, i) for i in image) for o in out)
    via_plan = resample_image(image[None], (5, 1, 1), (2.5, 1, 1), PLAN)[0]
    assert np.array_equal(via_plan, out)
    labels = blobs((6, 20, 20), 3)
    out_labels = resample_labels(labels, (5, 1, 1), (2.5, 1, 1), PLAN)
    assert np.array_equal(out_labels, np.repeat(labels, 2, axis=0))


def test_isotropic_data_is_interpolated_across_slices():
    image = analytic((6, 20, 20), (2, 1, 1))
    out = resample_image(image[None], (2, 1, 1), (1, 1, 1), PLAN)[0]
    assert out.shape == (12, 20, 20)
    assert not any(np.array_equal(out[3], i) for i in image)  # a blend of neighbouring slices
    interior = np.abs(out[2:-2] - analytic((12, 20, 20), (1, 1, 1))[2:-2])
    assert interior.max() < 0.02


def test_anisotropic_in_plane_uses_the_spline_order():
    image = analytic((4, 16, 16), (5, 1, 1))
    out = resample_volume(image, (4, 24, 24), 3, 0, axis=0)
    expected = np.stack([np.clip(ndimage.zoom(s, 1.5, order=3, mode="nearest", grid_mode=True), s.min(), s.max())
                         for s in image])
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("new_shape", [(26, 31, 7), (9, 12, 40), (13, 5, 20), (13, 17, 20), (1, 17, 20)])
def test_cubic_zoom_matches_scipy(new_shape):
    from autounet.preprocessing.resample import cubic_zoom

    volume = (ndimage.gaussian_filter(np.random.default_rng(3).normal(size=(13, 17, 20)), 1.5) * 100)
    expected = ndimage.zoom(volume, [n / o for n, o in zip(new_shape, volume.shape)], order=3, mode="nearest",
                            grid_mode=True)
    np.testing.assert_allclose(cubic_zoom(volume.astype(np.float32), new_shape), expected, atol=1e-4)
