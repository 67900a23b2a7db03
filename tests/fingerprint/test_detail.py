"""Label detail: how much of a label map survives a coarser in-plane grid (the planner's evidence for coarsening)."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.fingerprint.detail import COARSENING_FACTORS, MAX_SLICES, coarsened_label_dice
from tests.planning.fingerprints import image_2d


def test_a_large_square_survives_and_a_thin_line_does_not():
    square = np.zeros((1, 96, 96), np.uint8)
    square[0, 20:76, 20:76] = 1
    line = np.zeros((1, 96, 96), np.uint8)
    line[0, :, 47] = 1
    big = coarsened_label_dice(square)
    thin = coarsened_label_dice(line)
    assert len(big) == len(COARSENING_FACTORS) == len(thin)
    assert min(big) > 0.97 and big[0] >= big[1]
    assert max(thin) < 0.8  # a one-pixel line is gone (or smeared) on a 2x coarser grid


def test_every_foreground_label_counts_and_empty_maps_lose_nothing():
    two = np.zeros((1, 64, 64), np.uint8)
    two[0, 8:40, 8:40] = 1
    two[0, 50, 50] = 2  # a single pixel of label 2 cannot survive
    assert coarsened_label_dice(two)[0] == pytest.approx((coarsened_label_dice((two == 1).astype(np.uint8))[0] + 0)
                                                         / 2, abs=0.02)
    assert coarsened_label_dice(np.zeros((3, 16, 16), np.uint8)) == [1.0] * len(COARSENING_FACTORS)


def test_3d_cases_measure_a_bounded_number_of_foreground_slices():
    volume = np.zeros((MAX_SLICES * 4, 32, 32), np.uint8)
    volume[::2, 4:28, 4:28] = 1  # every other slice has foreground
    result = coarsened_label_dice(volume)
    assert result[0] == pytest.approx(coarsened_label_dice(volume[:1])[0])


def test_fingerprint_reports_the_median_and_none_when_unmeasured():
    fingerprint = image_2d(n_cases=3)
    assert fingerprint.label_dice_when_coarsened(2) is None  # made without the measurement
    for case, (at_2x, at_4x) in zip(fingerprint.cases, [(0.99, 0.9), (0.97, 0.8), (0.995, 0.95)]):
        case.coarsened_label_dice = [at_2x, at_4x]
    assert fingerprint.label_dice_when_coarsened(2) == pytest.approx(0.99)
    assert fingerprint.label_dice_when_coarsened(4) == pytest.approx(0.9)
    assert fingerprint.label_dice_when_coarsened(3) is None
