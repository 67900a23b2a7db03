"""How much memory preprocessing one case takes, and how many workers the machine can afford."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from autounet.hardware import cpu_cores, ram_gb

WORKER_BASE_BYTES = 250 * 2**20
"""Resident memory of an idle worker (Python, numpy, scipy, SimpleITK loaded)."""
RAM_SAFETY_FRACTION = 0.75
"""Share of the currently available RAM the workers may plan to use together."""


def case_peak_bytes(shape: Sequence[int], shape_after_crop: Sequence[int], new_shape: Sequence[int],
                    channels: int) -> int:
    """An upper estimate of one worker's peak memory while preprocessing a case.

    Counts the raw image (float32, plus the reader's own copy) and label map, the nonzero mask and
    hole filling, the cropped and normalised image, the spline filter's padded float32 copy of a channel,
    the resampled image, and the label map's chunked resampling and location search.

    Example:
        >>> case_peak_bytes((36, 50, 35), (36, 50, 35), (36, 50, 35), 1) < 300 * 2**20
        True
    """
    raw, cropped, resampled = (int(np.prod(s)) for s in (shape, shape_after_crop, new_shape))
    raw_bytes = raw * (8 * channels + 1 + 2 + 8)  # image twice, label, mask, hole-filling labels
    cropped_bytes = cropped * (4 * channels + 4 + 2)  # normalised image, one float32 channel, labels
    resampled_bytes = resampled * (4 * channels + 4 + 1 + 8)  # image, one float channel, labels, indices
    return WORKER_BASE_BYTES + raw_bytes + cropped_bytes + resampled_bytes


@dataclass
class WorkerChoice:
    """The worker count picked and why."""

    workers: int
    cores: int
    available_gb: float
    peak_case_gb: float | None
    limited_by_memory: bool


def choose_workers(peak_case_bytes: int | None, n_tasks: int, requested: int | None = None) -> WorkerChoice:
    """Workers to use: ``requested`` if given, else as many as cores, tasks and available RAM allow.

    RAM allows ``floor(0.75 * available / largest case peak)`` workers (at least one).
    """
    cores = cpu_cores()
    _, available = ram_gb()
    peak_gb = peak_case_bytes / 2**30 if peak_case_bytes else None
    by_memory = max(1, math.floor(RAM_SAFETY_FRACTION * available / peak_gb)) if peak_gb else cores
    if requested:
        return WorkerChoice(requested, cores, available, peak_gb, False)
    workers = max(1, min(cores, by_memory, max(1, n_tasks)))
    return WorkerChoice(workers, cores, available, peak_gb, by_memory < min(cores, max(1, n_tasks)))
