"""Where a fold's budget went (autounet.training.budget_split) and how validation is timed on a slab."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.inference.sliding_window import WindowSettings
from autounet.measure.validation_cost import time_validation
from autounet.training.budget_split import PARTS, describe_split, spent_seconds
from autounet.training.checkpoint import EpochRecord
from autounet.training.validation_timing import case_tiles, timing_slab


def _record(epoch: int, seconds: float, training: float) -> EpochRecord:
    return EpochRecord(epoch, 1.0, 1.0, [0.5], 0.5, 0.01, seconds, training_seconds=training, iterations=10)


def test_the_parts_add_up_to_the_fold_wall_time():
    log = [_record(0, 10.0, 8.0), _record(1, 12.0, 9.5)]
    spent = spent_seconds(setup=3.0, log=log, training_wall=30.0, validation=6.0)
    assert list(spent) == list(PARTS)
    assert spent["training iterations"] == 17.5 and spent["pseudo-Dice validation"] == 4.5
    assert spent["checkpoints and logs"] == pytest.approx(30.0 - 3.0 - 22.0)
    assert sum(spent.values()) == pytest.approx(36.0)
    line = describe_split(40.0, spent, 20)
    assert "training iterations 18 s (44 %, 20 iterations)" in line and line.endswith("4 s (10 %) unused")
    assert describe_split(30.0, spent, 20).endswith("6 s (20 %) over")


@pytest.mark.parametrize("shape, patch, per_pass", [((155, 240, 240), (64, 64), 32), ((155, 240, 240), (96, 160, 160), 1),
                                                   ((1, 300, 200), (128, 128), 8), ((3, 40, 40), (64, 64), 32)])
def test_validation_is_timed_on_the_thinnest_slab_that_fills_two_passes(shape, patch, per_pass):
    settings = WindowSettings(patch, tuple(16 for _ in patch), tiles_per_pass=per_pass)
    depth = patch[0] if len(patch) == 3 else 1
    planes = timing_slab(shape, settings)
    assert 1 <= planes <= shape[0]
    assert planes == shape[0] or case_tiles((planes, *shape[1:]), settings) >= 2 * per_pass
    if planes > depth:  # one step thinner would not have filled two passes
        assert case_tiles((planes - depth, *shape[1:]), settings) < 2 * per_pass
    assert planes < shape[0] or shape[0] <= 3 or len(patch) == 3


def test_validation_time_scales_the_timed_tiles_to_every_case():
    calls = []

    def prepare(case_id):
        calls.append(case_id)
        return 10, lambda: np.zeros(1)

    cost = time_validation({"a": 100, "b": 300, "c": 200}, prepare, 8, torch.device("cpu"))
    assert calls == ["c"] and cost.tiles == 600 and cost.cases == 3 and cost.seconds_per_tile >= 0
