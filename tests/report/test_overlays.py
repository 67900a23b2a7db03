"""Choosing what the overlays show: which cases, which slices, which intensities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from autounet.fingerprint.model import ChannelStats, Fingerprint
from autounet.paths import DatasetLocation
from autounet.report.collect import CaseRow, ReportData
from autounet.report.overlays import display_image, most_foreground_slices, pick_cases
from autounet.report.sections import _windows
from tests.inference.factory import configuration, plans_of


def _row(case: str, *dice: float) -> CaseRow:
    names = [f"c{i}" for i in range(len(dice))]
    return CaseRow(case, "0", dict(zip(names, dice)), {}, {}, {}, Path("ref"), Path("pred"))


def test_best_median_and_worst_by_mean_dice_leaving_out_undefined_cases():
    rows = [_row("a", 0.9, 0.7), _row("b", 0.2, math.nan), _row("c", math.nan, math.nan), _row("d", 0.5, 0.5),
            _row("e", 0.95, 0.95)]
    picks = pick_cases(rows)
    assert [(p.role, p.row.case) for p in picks] == [("best", "e"), ("median", "a"), ("worst", "b")]
    assert [p.row.case for p in pick_cases(rows[:1])] == ["a"]  # one case is shown once
    assert pick_cases([rows[2]]) == []


def test_the_slice_with_the_most_foreground_along_each_axis():
    mask = np.zeros((6, 7, 8), bool)
    mask[4, 1:6, 2:7] = True  # a plane at z = 4
    mask[1, 3, 3] = True
    assert most_foreground_slices(mask) == [4, 3, 3]
    assert most_foreground_slices(np.zeros((6, 7, 8), bool)) == [3, 3, 4]


def test_ct_uses_the_dataset_window_other_channels_their_own():
    picture = np.stack([np.linspace(-1000, 1000, 1000).reshape(10, 10, 10), np.arange(1000.).reshape(10, 10, 10)])
    stats = ChannelStats(mean=40, std=30, median=40, min=-100, max=300, percentile_00_5=-50, percentile_99_5=200)
    fingerprint = Fingerprint("D", False, {0: "CT", 1: "MRI"}, [0, 1], [], [stats, stats])
    plan = configuration(channels=2)
    plan.normalization = ["ct", "zscore"]
    data = ReportData(DatasetLocation("D", Path("r"), Path("p"), Path("x")), fingerprint=fingerprint,
                      plans=plans_of("D", plan))
    (ct_low, ct_high), (mr_low, mr_high) = _windows(data, "3d_fullres", picture)
    assert (ct_low, ct_high) == (-50, 200)
    assert mr_low == np.percentile(picture[1], 0.5) and mr_high == np.percentile(picture[1], 99.5)
    shown = display_image(picture, [(ct_low, ct_high)], rgb=False)
    assert shown.shape == (10, 10, 10) and shown.min() == 0 and shown.max() == 1


def test_8_bit_colour_is_shown_as_it_is():
    picture = np.stack([np.full((1, 4, 4), v, np.float32) for v in (255, 128, 0)])
    shown = display_image(picture, [(0, 1)] * 3, rgb=True)
    assert np.allclose(shown[:, 0, 0, 0], [1.0, 128 / 255, 0.0])
