"""The batch a time budget trains with: the smallest at full samples per second, which buys the most updates."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from autounet.measure import step_timing
from autounet.measure.settings import BATCH_SEARCH, BatchSearchSettings
from autounet.network import NetworkConfig


@dataclass(frozen=True)
class BatchTiming:
    """One candidate batch size and its measured seconds per training iteration."""

    batch_size: int
    seconds_per_iteration: float

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds_per_iteration / self.batch_size


def candidate_batches(max_batch: int, settings: BatchSearchSettings = BATCH_SEARCH) -> list[int]:
    """Batch sizes a time budget tries: doubling from the smallest batch, ending at ``max_batch``.

    Example:
        >>> candidate_batches(9), candidate_batches(2), candidate_batches(1)
        ([2, 4, 8, 9], [2], [1])
    """
    if max_batch <= settings.min_batch_size:
        return [max(1, max_batch)]
    batches = []
    batch = settings.min_batch_size
    while batch < max_batch:
        batches.append(batch)
        batch *= 2
    return batches + [max_batch]


def plateau_batch(timings: list[BatchTiming], settings: BatchSearchSettings = BATCH_SEARCH) -> int:
    """The smallest measured batch whose seconds per sample are within the tolerance of the best.

    Example:
        >>> plateau_batch([BatchTiming(2, 0.08), BatchTiming(4, 0.1), BatchTiming(8, 0.15), BatchTiming(16, 0.3)])
        8
    """
    best = min(t.seconds_per_sample for t in timings)
    return min(t.batch_size for t in timings if t.seconds_per_sample <= settings.throughput_tolerance * best)


def time_batch_size(network: NetworkConfig, patch_size: list[int], max_batch: int, device: torch.device,
                    fast_cpu: bool = True, settings: BatchSearchSettings = BATCH_SEARCH,
                    deadline: float | None = None) -> tuple[int, list[BatchTiming]]:
    """The batch a time budget trains with, at most ``max_batch`` (the plan's, sized for memory).

    Batches double from the smallest until samples per second stop improving by more than the tolerance (or
    ``max_batch`` is reached); the smallest batch on the plateau wins. On a CPU that is a small batch (more,
    cheaper updates in the same time); on a GPU the plateau usually reaches the plan's batch. Past ``deadline``
    (a ``time.perf_counter()``) no larger batch is tried, and the one being timed stops after one timed step.
    """
    timings: list[BatchTiming] = []
    window = step_timing.TIMER.window_seconds / 2
    for batch in candidate_batches(max_batch, settings):
        steps = step_timing.measure_step_seconds(network, patch_size, batch, device, fast_cpu, window_seconds=window,
                                                 deadline=deadline)
        timings.append(BatchTiming(batch, steps.training_iteration))
        best = min(t.seconds_per_sample for t in timings)
        if timings[-1].seconds_per_sample > settings.throughput_tolerance * best:
            break  # past the plateau: larger batches only get slower per sample
        if deadline is not None and time.perf_counter() >= deadline:
            break
    return plateau_batch(timings, settings), timings
