"""How the machine is measured: timing windows, when step times count as settled, and the batch search's rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimerSettings:
    """How long and how often a step is timed before its median is trusted."""

    window_seconds: float = 1.0
    """Steps are timed for at least this long (the batch search uses half of it per batch)."""
    min_timed_steps: int = 4
    slow_step_seconds: float = 2.0
    slow_timed_steps: int = 2
    """Steps whose warm-up took over ``slow_step_seconds`` are timed this many times (each already spans many
    kernels; ISBI's 6.5 s steps spent 95 s of a 30-minute budget on timing one and two threads)."""
    max_timed_steps: int = 60
    settled_ratio: float = 2.0
    """Steps count as settled when the slowest of the last few takes at most this many times the fastest."""


@dataclass(frozen=True)
class BatchSearchSettings:
    """Which batch a time budget trains with."""

    throughput_tolerance: float = 1.15
    """The smallest batch whose seconds per sample are within this factor of the best measured wins: beyond it a
    CPU does no more samples per second, so a larger batch only buys fewer updates."""
    min_batch_size: int = 2
    """nnU-Net's smallest batch; batch 1 gives no batch statistics to the Dice loss of a 2D network."""


TIMER = TimerSettings()
BATCH_SEARCH = BatchSearchSettings()
