"""Metrics against values computed by hand on small shapes."""

import math

import numpy as np
import pytest

from autounet.evaluation.metrics import case_metrics, classes_from_spec, normalise_classes
from autounet.evaluation.surface import surface_of, surface_scores


def cube(shape, start, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_dice_iou_counts_and_volumes_by_hand():
    ref = np.zeros((2, 4, 5), np.uint8)
    pred = np.zeros_like(ref)
    ref[0, 0, :4] = 1   # 4 voxels
    pred[0, 0, 1:5] = 1  # 4 voxels, 3 shared
    ref[1, 2, 0] = 2
    pred[1, 3, 3] = 2
    m = case_metrics(ref, pred, {"a": [1], "b": [2], "ab": [1, 2]}, (2.0, 0.5, 1.5))
    a = m["a"]
    assert (a.tp, a.fp, a.fn, a.tn) == (3, 1, 1, 40 - 5)
    assert a.dice == pytest.approx(6 / 8) and a.iou == pytest.approx(3 / 5)
    assert a.reference_voxels == 4 and a.reference_volume_mm3 == pytest.approx(4 * 1.5)
    assert m["b"].dice == 0.0 and m["b"].iou == 0.0
    ab = m["ab"]  # region: union of values 1 and 2
    assert (ab.tp, ab.fp, ab.fn) == (3, 2, 2) and ab.dice == pytest.approx(6 / 10)


def test_class_absent_from_both_is_nan_and_one_sided_is_zero():
    ref = np.zeros((1, 6, 6), np.uint8)
    ref[0, 1:3, 1:3] = 1
    m = case_metrics(ref, np.zeros_like(ref), {"a": [1], "b": [2]}, (999.0, 1.0, 1.0), is_2d=True,
                     surface=True)
    assert math.isnan(m["b"].dice) and math.isnan(m["b"].iou) and math.isnan(m["b"].hd95_mm)
    assert math.isnan(m["b"].nsd) and m["b"].tn == 36
    assert m["a"].dice == 0.0 and m["a"].nsd == 0.0 and math.isnan(m["a"].hd95_mm)
    assert m["a"].reference_volume_mm3 == pytest.approx(4.0)  # 2D: pixel area, no through-plane spacing


def test_ignore_label_voxels_are_left_out():
    ref = np.array([[[1, 1, 3, 3, 0]]])
    pred = np.array([[[1, 0, 1, 1, 1]]])
    m = case_metrics(ref, pred, {"a": [1]}, (1.0, 1.0, 1.0), ignore_label=3)["a"]
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 1, 1, 0)


def test_identical_masks_have_zero_hd95_and_full_nsd():
    mask = cube((10, 10, 10), (2, 3, 4), 4)
    scores = surface_scores(mask, mask, (1.0, 2.0, 0.5))
    assert scores.hd95_mm == 0.0 and scores.nsd == 1.0


def test_shifted_cube_distances_with_anisotropic_spacing():
    # A 4-voxel cube shifted by 2 voxels along x with x spacing 1.5 mm. Each surface voxel of the shifted cube
    # whose x-row overlaps the original's is 0 mm away; the two x-faces of 16 voxels that stick out lie at 1
    # and 2 voxels (1.5, 3.0 mm) from the nearest original surface voxel... checked by brute force instead.
    spacing = (2.0, 0.7, 1.5)
    a = cube((8, 8, 10), (2, 2, 2), 4)
    b = cube((8, 8, 10), (2, 2, 4), 4)
    sa, sb = surface_of(a), surface_of(b)
    pa, pb = np.argwhere(sa) * spacing, np.argwhere(sb) * spacing
    pairwise = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    a_to_b, b_to_a = pairwise.min(1), pairwise.min(0)
    expected_hd95 = max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95))
    expected_nsd = ((a_to_b <= 1.0).sum() + (b_to_a <= 1.0).sum()) / (a_to_b.size + b_to_a.size)
    scores = surface_scores(a, b, spacing, tolerance_mm=1.0)
    assert scores.hd95_mm == pytest.approx(expected_hd95)
    assert scores.nsd == pytest.approx(expected_nsd)
    # By hand: the far x-face of b is 2 voxels = 3.0 mm from a's far x-face, so HD95 is 3.0 mm.
    assert scores.hd95_mm == pytest.approx(3.0)


def test_surface_of_a_cube_is_its_shell():
    mask = cube((6, 6, 6), (1, 1, 1), 4)
    assert surface_of(mask).sum() == 4 ** 3 - 2 ** 3


def test_concentric_spheres_hd95_is_the_radius_gap():
    grid = np.indices((41, 41, 41)) - 20
    radius = np.sqrt((grid ** 2).sum(0))
    inner, outer = radius <= 10, radius <= 14
    scores = surface_scores(outer, inner, (1.0, 1.0, 1.0), tolerance_mm=1.0)
    assert scores.hd95_mm == pytest.approx(4.0, abs=0.6)
    assert scores.nsd == 0.0  # every surface point is about 4 mm from the other surface


def test_nsd_counts_points_within_tolerance():
    # A 6x6 square and the 4x4 square inside it: shells of 20 and 12 pixels. Every inner shell pixel is 1 pixel
    # from the outer shell; outer shell pixels are 1 pixel from the inner shell except the 4 corners (sqrt 2).
    outer = cube((1, 10, 10), (0, 2, 2), 6)
    inner = cube((1, 10, 10), (0, 3, 3), 4)
    assert surface_scores(outer, inner, (999.0, 1.0, 1.0), tolerance_mm=1.0).nsd == pytest.approx(28 / 32)
    assert surface_scores(outer, inner, (999.0, 1.0, 1.0), tolerance_mm=1.5).nsd == 1.0
    assert surface_scores(outer, inner, (999.0, 1.0, 1.0), tolerance_mm=0.5).nsd == 0.0
    # 2 mm pixels double every distance; HD95 over the outer shell's 20 distances: 16 at 2 mm, 4 at 2.83 mm
    scores = surface_scores(outer, inner, (999.0, 2.0, 2.0), tolerance_mm=2.0)
    assert scores.nsd == pytest.approx(28 / 32)
    assert scores.hd95_mm == pytest.approx(2 * np.sqrt(2))


def test_classes_from_spec_drops_background_and_ignore():
    from autounet.dataset.spec import DatasetSpec

    spec = DatasetSpec("x", {0: "CT"}, {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3}, 1, ".nii.gz",
                       regions_class_order=[1, 2])
    assert classes_from_spec(spec) == {"whole": [1, 2], "core": [2]}
    assert normalise_classes({"a": 1}) == {"a": [1]}
