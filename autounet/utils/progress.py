"""Progress display: a Rich bar in a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from autounet.utils.logs import LOGGER, LoggedConsole, Verbosity, plain_line

T = TypeVar("T")

console = LoggedConsole(stderr=True, notes=True)
"""The console for progress and messages (stderr, so stdout stays clean for data; copied to the open log files;
kept off the terminal by ``--quiet``)."""

_bars: list[Progress] = []
"""The Rich displays of the :func:`track` loops running now, innermost last (:func:`track_within` joins it)."""


def is_interactive() -> bool:
    """True when progress bars can redraw in place (a real terminal, and no ``--quiet``)."""
    return console.is_terminal and not console.is_dumb_terminal and not Verbosity.quiet


def make_progress(transient: bool = False) -> Progress:
    """A Rich progress display with count, rate, elapsed and remaining time."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=console, transient=transient)


def track(items: Iterable[T], description: str, total: int | None = None,
          every_seconds: float = 10.0) -> Iterator[T]:
    """Iterate ``items`` while showing progress.

    In a terminal this is a Rich bar; otherwise a plain line is printed at most
    every ``every_seconds`` seconds and once at the end, so logs stay readable.

    Example:
        >>> for case in track(cases, "fingerprint"):  # doctest: +SKIP
        ...     work(case)
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if is_interactive():
        with make_progress() as progress:
            task = progress.add_task(description, total=total, rate="")
            _bars.append(progress)
            try:
                start = time.perf_counter()
                n = 0
                for n, item in enumerate(items, 1):
                    yield item
                    elapsed = time.perf_counter() - start
                    progress.update(task, advance=1, rate=f"{n / elapsed:.1f}/s" if elapsed > 0 else "")
            finally:
                _bars.remove(progress)
        LOGGER.info(f"{description}: {n}/{total if total is not None else n} done in "
                    f"{time.perf_counter() - start:.1f} s")
        return
    start = last = time.perf_counter()
    n = 0
    for n, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every_seconds:
            last = now
            plain_line(f"{description}: {n}/{total if total is not None else '?'} ({now - start:.0f} s)")
    plain_line(f"{description}: {n}/{total if total is not None else n} done in {time.perf_counter() - start:.1f} s")


def track_within(items: Iterable[T], description: str, total: int, after_seconds: float = 3.0,
                 every_seconds: float = 10.0) -> Iterator[T]:
    """Iterate the parts of one step of a :func:`track` loop, showing their progress only when the step is slow.

    Nothing is shown for a step that ends within ``after_seconds``. After that, in a terminal, a second bar
    joins the running :func:`track` bar (and leaves when the step ends); in a log, a plain line is printed at
    most every ``every_seconds``.

    Example:
        >>> for case in track(cases, "predict"):            # doctest: +SKIP
        ...     for tile in track_within(tiles, "tiles", total=len(tiles)):
        ...         run(tile)
    """
    start = last = time.perf_counter()
    bar = _bars[-1] if _bars and is_interactive() else None
    task = None
    try:
        for n, item in enumerate(items, 1):
            yield item
            now = time.perf_counter()
            if now - start < after_seconds:
                continue
            if bar is not None:
                if task is None:
                    task = bar.add_task(f"  {description}", total=total, completed=n, rate="")
                else:
                    bar.update(task, completed=n)
            elif now - last >= every_seconds and n < total:
                last = now
                plain_line(f"  {description}: {n}/{total} ({now - start:.0f} s)")
    finally:
        if task is not None:
            bar.remove_task(task)
