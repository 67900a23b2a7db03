"""The progress bar inside each epoch: iterations, it/s, time left for the epoch and for the run."""

from __future__ import annotations

import time

from autounet.utils.logs import plain_line
from autounet.utils.progress import is_interactive, make_progress

PLAIN_EVERY_SECONDS = 30.0


class EpochProgress:
    """Shows one epoch's training iterations; a Rich bar in a terminal, a plain line now and then otherwise.

    Example:
        >>> with EpochProgress(0, 10, iterations=250, seconds_per_epoch=None) as bar:  # doctest: +SKIP
        ...     bar.advance(loss=0.8)
    """

    def __init__(self, epoch: int, total_epochs: int, iterations: int, seconds_per_epoch: float | None,
                 enabled: bool = True):
        self.epoch, self.total_epochs, self.iterations = epoch, total_epochs, iterations
        self.seconds_per_epoch = seconds_per_epoch
        self.enabled = enabled
        self.done = 0
        self.start = self.last_print = time.perf_counter()
        self.progress = make_progress(transient=True) if enabled and is_interactive() else None

    def __enter__(self) -> "EpochProgress":
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {self.epoch + 1}/{self.total_epochs}",
                                               total=self.iterations, rate="")
        return self

    def _run_eta(self, rate: float) -> str:
        epoch_seconds = self.seconds_per_epoch or (self.iterations / rate if rate else 0.0)
        remaining = (self.iterations - self.done) / rate if rate else 0.0
        remaining += epoch_seconds * (self.total_epochs - self.epoch - 1)
        return f"run eta {remaining / 60:.1f} min"

    def advance(self, loss: float) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{rate:.2f} it/s loss {loss:.4f} {self._run_eta(rate)}"
        if self.progress is not None:
            self.progress.update(self.task, advance=1, rate=text)
        elif self.enabled and time.perf_counter() - self.last_print >= PLAIN_EVERY_SECONDS:
            self.last_print = time.perf_counter()
            plain_line(f"epoch {self.epoch + 1}/{self.total_epochs}: {self.done}/{self.iterations} {text}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
