"""A process pool that keeps only a few tasks in flight, so a run can stop early without finishing the queue."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, Sequence, TypeVar

from autounet.utils.parallel import Outcome
from autounet.utils.progress import track

T = TypeVar("T")


def run_bounded(fn: Callable[[T], object], items: Sequence[T], workers: int, description: str) -> Iterator[Outcome]:
    """Apply ``fn`` to each item in ``workers`` processes, yielding an :class:`Outcome` per item as it finishes.

    At most two tasks per worker are queued at a time; when the caller stops iterating, queued
    tasks are cancelled and only those already running finish. A worker that dies (killed for
    memory, say) gives its task and every unfinished one an outcome carrying ``BrokenProcessPool``.
    With ``workers <= 1`` everything runs in this process.
    """
    return track(_completions(fn, items, workers), description, total=len(items))


def _completions(fn: Callable[[T], object], items: Sequence[T], workers: int) -> Iterator[Outcome]:
    if workers <= 1 or len(items) <= 1:
        for item in items:
            try:
                yield Outcome(item, fn(item))
            except Exception as error:  # noqa: BLE001 - reported per case by the caller
                yield Outcome(item, error=error)
        return
    pending: dict[Future, T] = {}
    queue = iter(items)
    # 'spawn' keeps workers independent of the parent's threads (torch, BLAS).
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    try:
        broken: BrokenProcessPool | None = None
        while True:
            while broken is None and len(pending) < 2 * workers:
                item = next(queue, None)
                if item is None:
                    break
                try:
                    pending[pool.submit(fn, item)] = item
                except BrokenProcessPool as error:
                    broken = error
                    yield Outcome(item, error=error)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                try:
                    yield Outcome(item, future.result())
                except BrokenProcessPool as error:
                    broken = error
                    yield Outcome(item, error=error)
                except Exception as error:  # noqa: BLE001
                    yield Outcome(item, error=error)
        if broken is not None:
            for item in queue:
                yield Outcome(item, error=broken)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
