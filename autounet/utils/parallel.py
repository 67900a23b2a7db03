"""Run a function over many cases in a process pool, with progress and per-case errors."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

from autounet.utils.progress import track

T = TypeVar("T")
R = TypeVar("R")


def default_workers(limit: int | None = None) -> int:
    """The number of worker processes to use by default: the usable CPU cores, capped at ``limit``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit) if limit else cores)


@dataclass
class Outcome:
    """What became of one item: its result, or the error it raised."""

    item: Any
    result: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def map_in_processes(fn: Callable[[T], R], items: Sequence[T], workers: int, description: str) -> Iterator[Outcome]:
    """Apply ``fn`` to every item in ``workers`` processes, yielding an :class:`Outcome` per item as it finishes.

    An exception in one item does not stop the others: it is returned in its
    outcome so the caller can name the case and carry on. With ``workers <= 1``
    everything runs in this process (easier to debug, no start-up cost).
    """
    if workers <= 1 or len(items) <= 1:
        for item in track(items, description):
            try:
                yield Outcome(item, fn(item))
            except Exception as error:  # noqa: BLE001 - reported per case by the caller
                yield Outcome(item, error=error)
        return
    # 'spawn' keeps workers independent of the parent's threads (torch, BLAS); our workers import little.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for future in track(as_completed(futures), description, total=len(futures)):
            item = futures[future]
            try:
                yield Outcome(item, future.result())
            except Exception as error:  # noqa: BLE001
                yield Outcome(item, error=error)
