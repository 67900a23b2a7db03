"""Wall time per stage of a long job (read, preprocess, network, restore, write), each second counted once.

Stages may nest (a cascade's first stage predicts inside the second stage's preprocessing): the inner stage's
time is its own and is not counted again in the outer one, so the stages add up to the time measured.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class StageTimes:
    """Seconds spent in each named stage, summed over every time it ran.

    Example:
        >>> times = StageTimes()
        >>> with times.measure("preprocess"):
        ...     with times.measure("network"):
        ...         pass
        >>> sorted(times.seconds)
        ['network', 'preprocess']
        >>> times.describe().startswith("preprocess ")
        True
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._running: list[tuple[str, float]] = []

    def _add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Count the time inside the block as ``stage`` (pausing the stage it is nested in)."""
        now = time.perf_counter()
        if self._running:
            outer, started = self._running[-1]
            self._add(outer, now - started)
        self._running.append((stage, now))
        try:
            yield
        finally:
            now = time.perf_counter()
            _, started = self._running.pop()
            self._add(stage, now - started)
            if self._running:
                self._running[-1] = (self._running[-1][0], now)

    def describe(self) -> str:
        """The stages in the order they first ran, with their seconds and share of the total."""
        return describe_stages(self.seconds)


def describe_stages(seconds: dict[str, float]) -> str:
    """``read 1.0 s (10%), network 9.0 s (90%)`` for ``{"read": 1.0, "network": 9.0}``."""
    total = sum(seconds.values()) or 1.0
    return ", ".join(f"{stage} {value:.1f} s ({value / total:.0%})" for stage, value in seconds.items())
