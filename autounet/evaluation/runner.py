"""Run per-case scoring jobs serially while that is cheaper, in worker processes when it pays off."""

from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

from autounet.utils.parallel import Outcome, default_workers, map_in_processes
from autounet.utils.progress import track

PARALLEL_WORTH_S = 8.0
"""Serial work left (estimated) above which starting worker processes (seconds each under load) pays off."""
PROBE_CASES = 2


def run_jobs(fn: Callable, jobs: Sequence, workers: int | None, description: str) -> Iterator[Outcome]:
    """An :class:`Outcome` per job (in completion order).

    With ``workers`` given, exactly that many processes. With None, the first jobs run in this process; when
    they predict that the rest would take more than ``PARALLEL_WORTH_S`` seconds, the rest goes to one
    process per CPU core. Scoring small cases (e.g. Hippocampus, milliseconds each) thus never waits for
    workers to start.
    """
    if workers is not None:
        yield from map_in_processes(fn, jobs, max(1, workers), description)
        return
    cores = default_workers()
    start = time.perf_counter()
    serial = track(jobs, description)
    for index, job in enumerate(serial):
        if cores > 1 and index >= PROBE_CASES:
            per_job = (time.perf_counter() - start) / index
            if per_job * (len(jobs) - index) > PARALLEL_WORTH_S:
                serial.close()
                yield from map_in_processes(fn, jobs[index:], cores, f"{description} ({cores} processes)")
                return
        try:
            yield Outcome(job, fn(job))
        except Exception as error:  # noqa: BLE001 - reported per case by the caller
            yield Outcome(job, error=error)
