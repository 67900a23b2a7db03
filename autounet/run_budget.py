"""How ``run --budget`` divides its time: planning's measuring allowance, and each fold's share of what is left.

The budget counts from the start of ``run``: verifying, fingerprinting, planning (its measurements capped at
:data:`~autounet.planning.timing_allowance.PLANNING_SHARE` of the budget), preprocessing, every fold's training and
validation, find-best and the report. Planning sizes networks for the nominal share of one fold (the budget
divided by the folds trained, which also names the fitted configurations, e.g. ``2d_fitted_10m``); each fold
then trains for the time actually left, divided among the folds still to train, less a reserve for what comes
after the last fold (:meth:`RunBudget.closing_seconds`). Predicting ``imagesTs`` comes after the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from autounet.planning.timing_allowance import PLANNING_SHARE

CLOSING_SHARE = 0.02
"""Kept back for find-best and the report after the last fold (at least :data:`CLOSING_MIN_SECONDS`)."""
CLOSING_MIN_SECONDS = 5.0


@dataclass
class RunBudget:
    """A ``run``'s whole time budget, shared by ``parts`` fold trainings, counted from ``started``."""

    total_seconds: float
    parts: int
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.total_seconds - (time.perf_counter() - self.started)

    def nominal_fold_seconds(self) -> float:
        """The budget divided equally among the folds: what planning sizes networks for."""
        return self.total_seconds / max(1, self.parts)

    def planning_allowance(self) -> float:
        """The seconds planning may spend measuring networks."""
        return PLANNING_SHARE * self.total_seconds

    def closing_seconds(self) -> float:
        """Kept back after the last fold for find-best and the report.

        Example:
            >>> RunBudget(600, 1).closing_seconds(), RunBudget(3600, 5).closing_seconds()
            (12.0, 72.0)
        """
        return max(CLOSING_MIN_SECONDS, CLOSING_SHARE * self.total_seconds)

    def next_fold_seconds(self, folds_left: int) -> float:
        """The share of the time left (less the closing reserve) of the next of ``folds_left`` folds."""
        return (self.left() - self.closing_seconds()) / max(1, folds_left)
