"""Metrics against values computed by hand on small shapes."""

import math

import numpy as np
import pytest

from autounet.evaluation.metrics import case_metrics, classes_from_spec, normalise_classes
from autounet.evaluation.surface import surface_scores


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


def test_classes_from_spec_drops_background_and_ignore():
    from autounet.dataset.spec import DatasetSpec

    spec = DatasetSpec("x", {0: "CT"}, {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3}, 1, ".nii.gz",
                       regions_class_order=[1, 2])
    assert classes_from_spec(spec) == {"whole": [1, 2], "core": [2]}
    assert normalise_classes({"a": 1}) == {"a": [1]}
