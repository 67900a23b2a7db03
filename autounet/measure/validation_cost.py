"""What a fold's final validation will cost: its sliding-window tiles times the measured seconds of one tile."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from autounet.measure.step_timing import synchronize


@dataclass(frozen=True)
class ValidationAllowance:
    """What besides the network a validation costs, and the safety on the measured tile time."""

    per_case_seconds: float = 0.25
    """Per validation case: reading, preprocessing, resampling, writing and scoring besides the network."""
    fixed_seconds: float = 1.0
    """Loading the predictor and the evaluation once."""
    factor: float = 1.5
    """Safety on the measured tile time: mirrored inputs and a loaded machine vary it."""


ALLOWANCE = ValidationAllowance()


@dataclass(frozen=True)
class ValidationCost:
    """What predicting the fold's validation cases costs: tiles, and the measured seconds of one tile."""

    seconds_per_tile: float
    """Seconds per sliding-window tile, measured by predicting part of a real validation case without mirroring."""
    tiles: int
    cases: int
    mirrorings: int
    """Network inputs per tile with mirroring TTA (2 ** spatial axes)."""

    def seconds(self, tta: bool, allowance: ValidationAllowance = ALLOWANCE) -> float:
        """Estimated wall time of the final validation, with or without mirroring TTA.

        Example:
            >>> ValidationCost(0.01, 100, 4, 8).seconds(tta=True)
            14.0
        """
        inputs = self.tiles * (self.mirrorings if tta else 1)
        return round(inputs * self.seconds_per_tile * allowance.factor + self.cases * allowance.per_case_seconds
                     + allowance.fixed_seconds, 1)


def time_validation(tiles_per_case: dict[str, int], prepare: Callable[[str], tuple[int, Callable[[], object]]],
                    mirrorings: int, device: torch.device) -> ValidationCost:
    """Time the prediction of part of the median case and scale it by tiles to all of ``tiles_per_case``.

    ``prepare(case_id)`` loads (part of) a case and returns how many tiles it holds and the call that predicts it
    (only that call is timed).
    """
    if not tiles_per_case:
        return ValidationCost(0.0, 0, 0, mirrorings)
    cases = sorted(tiles_per_case, key=tiles_per_case.get)
    timed_tiles, predict = prepare(cases[len(cases) // 2])
    start = time.perf_counter()
    predict()
    synchronize(device)
    per_tile = (time.perf_counter() - start) / max(1, timed_tiles)
    return ValidationCost(per_tile, sum(tiles_per_case.values()), len(tiles_per_case), mirrorings)
