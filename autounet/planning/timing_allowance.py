"""The time planning may spend measuring networks, when it counts inside a run's budget.

``run --budget 10m`` counts planning inside the ten minutes, so its measurements get a share of them
(:data:`PLANNING_SHARE`). A network is measured only when the allowance left would cover measuring it, judged by
its predicted seconds per iteration; otherwise the prediction stands (from the cheapest network's measured speed
and the cost model) and is marked as such in plans.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from autounet.measure.settings import TIMER, TimerSettings

PLANNING_SHARE = 0.05
"""The share of ``run --budget`` that planning's measurements may take (issue 26: at most 5 %)."""


def measuring_seconds(seconds_per_iteration: float, settings: TimerSettings = TIMER) -> float:
    """About how long timing a network of ``seconds_per_iteration`` takes: the batch search's few batches, each
    a warm-up plus the timed steps, or its window when the steps are shorter.

    Example:
        >>> round(measuring_seconds(0.1), 2), round(measuring_seconds(3.0), 1)
        (1.8, 27.0)
    """
    steps = settings.min_timed_steps if seconds_per_iteration < settings.slow_step_seconds else settings.slow_timed_steps
    per_batch = max(settings.window_seconds / 2, steps * seconds_per_iteration) + seconds_per_iteration
    return 3 * per_batch


@dataclass
class TimingAllowance:
    """Seconds planning may still spend measuring (None: no limit, as ``plan --budget`` alone measures)."""

    seconds: float | None = None
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.perf_counter() - self.started)

    def deadline(self) -> float | None:
        """The ``time.perf_counter()`` at which measuring must stop (None: no limit)."""
        return None if self.seconds is None else self.started + self.seconds

    def affords(self, seconds_per_iteration: float, shared_by: int = 1) -> bool:
        """Whether measuring a network predicted at ``seconds_per_iteration`` fits this allowance's remaining time
        divided among ``shared_by`` configurations still to plan.

        Example:
            >>> TimingAllowance(None).affords(100.0), TimingAllowance(6.0).affords(3.0)
            (True, False)
        """
        return measuring_seconds(seconds_per_iteration) <= self.left() / max(1, shared_by)
