"""The data stream: batches made in background processes and handed over in order.

Worker ``w`` of ``n`` makes every ``n``-th batch of the run's sequence, so the
main process reads them round-robin and gets the same sequence whatever ``n``.
A worker that raises sends its error, one that dies is noticed within a
second; either way the stream stops its workers and raises
:class:`DataWorkerError` naming the worker, the cause (the kernel's out-of-memory
killer, where its count of kills shows it) and what to change -- never a hang.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import traceback
from typing import Iterator

from autounet.errors import UserError
from autounet.training.batches import Batch, BatchMaker, BatchRecipe, batch_keys
from autounet.utils.memory_events import oom_kill_count

PREFETCH_PER_WORKER = 2
POLL_SECONDS = 1.0


class DataWorkerError(UserError):
    """A data worker failed or died; the message says which and why."""


def _worker_main(recipe: BatchRecipe, start_epoch: int, iterations: int, val_iterations: int, worker: int,
                 workers: int, out: mp.Queue, stop: mp.Event, parent: int) -> None:
    maker = BatchMaker(recipe)
    for position, key in enumerate(batch_keys(start_epoch, iterations, val_iterations)):
        if position % workers != worker:
            continue
        try:
            item = ("batch", maker.make(key))
        except Exception as error:  # noqa: BLE001 - sent to the main process, which reports it
            user_error = isinstance(error, UserError)
            item = ("error", (user_error, str(error) if user_error else f"{type(error).__name__}: {error}",
                              traceback.format_exc(), key))
        while True:
            if stop.is_set() or os.getppid() != parent:
                out.cancel_join_thread()  # exit promptly, even with a batch still in the pipe
                return
            try:
                out.put(item, timeout=POLL_SECONDS)
                break
            except queue.Full:
                continue
        if item[0] == "error":
            return


def _death_cause(exitcode: int | None, oom_kills_before: int | None, oom_kills_now: int | None) -> str:
    """What ended a worker, with the likely reason where the exit says little."""
    if exitcode is not None and exitcode < 0:
        try:
            cause = f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            cause = f"was killed by signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            if oom_kills_before is not None and oom_kills_now is not None and oom_kills_now > oom_kills_before:
                cause += (" by the kernel's out-of-memory killer (its count of OOM kills rose from "
                          f"{oom_kills_before} to {oom_kills_now}): the machine ran out of memory")
            elif oom_kills_before is not None and oom_kills_now is not None:
                cause += " (not by the out-of-memory killer, whose count did not change: by another process)"
            else:
                cause += " (most likely by the kernel's out-of-memory killer, or by another process)"
        return cause
    if exitcode is None:
        return "stopped responding"
    return f"exited with code {exitcode} (its error output, if any, is above)"


class BatchStream:
    """Iterates a run's batches (see :func:`batch_keys`) from ``start_epoch`` on.

    With ``workers=0`` batches are made in this process (simplest, for debugging
    and exact CPU tests; results are identical either way).

    Example:
        >>> with BatchStream(recipe, 0, iterations=250, val_iterations=50, workers=4) as stream:  # doctest: +SKIP
        ...     batch = next(stream)
    """

    def __init__(self, recipe: BatchRecipe, start_epoch: int, iterations: int, val_iterations: int, workers: int):
        self.workers = workers
        self._position = 0
        self._processes: list = []
        self._queues: list = []
        if workers == 0:
            maker = BatchMaker(recipe)
            self._inline: Iterator[Batch] = (maker.make(k) for k in batch_keys(start_epoch, iterations, val_iterations))
            return
        context = mp.get_context("spawn")
        self._oom_kills = oom_kill_count()
        self._stop = context.Event()
        for worker in range(workers):
            out = context.Queue(maxsize=PREFETCH_PER_WORKER)
            process = context.Process(target=_worker_main, daemon=True, name=f"autounet-data-{worker}",
                                      args=(recipe, start_epoch, iterations, val_iterations, worker, workers,
                                            out, self._stop, os.getpid()))
            process.start()
            self._processes.append(process)
            self._queues.append(out)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Batch:
        if self.workers == 0:
            return next(self._inline)
        index = self._position % self.workers
        process, source = self._processes[index], self._queues[index]
        while True:
            try:
                kind, payload = source.get(timeout=POLL_SECONDS)
                break
            except queue.Empty:
                if not process.is_alive():
                    try:
                        kind, payload = source.get(timeout=0.1)
                        break
                    except queue.Empty:
                        self.close()
                        cause = _death_cause(process.exitcode, self._oom_kills, oom_kill_count())
                        raise DataWorkerError(f"data worker {index} of {self.workers} {cause}; training stopped at "
                                              f"its last checkpoint. Give fewer --workers (or free memory), then "
                                              f"run the same command again (train: with --resume).") from None
        if kind == "error":
            self.close()
            user_error, message, trace, key = payload
            text = (f"data worker {index} failed making the {key.phase} batch {key.iteration} of epoch "
                    f"{key.epoch}: {message}")
            if not user_error:
                text += f"\n{trace}"
            raise DataWorkerError(text)
        self._position += 1
        return payload

    def close(self) -> None:
        """Stop and reap the workers (idempotent)."""
        if not self._processes:
            return
        self._stop.set()
        for process in self._processes:
            process.join(timeout=2 * POLL_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join(timeout=POLL_SECONDS)
        for source in self._queues:
            source.cancel_join_thread()
            source.close()
        self._processes, self._queues = [], []

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
