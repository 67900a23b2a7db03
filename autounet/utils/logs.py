"""Log files: what a command printed, plus debug detail, in plain text in the folder the command writes.

The terminal shows what the Rich consoles print (:class:`LoggedConsole`); each console also hands a plain-text copy
of every line to the ``autounet`` logger, whose only handlers are the log files that :func:`log_to` opens, so the
terminal output is unchanged. Debug detail (versions, hardware, the resolved config) goes to the logger alone, and
to the terminal too with ``--verbose``. ``--quiet`` keeps progress and notes off the terminal (not out of the logs).

Example:
    >>> with log_to(fold_dir / "training.log"):       # doctest: +SKIP
    ...     console.print("epoch 1/5: loss 0.8")       # on the terminal and in training.log
    ...     debug(f"torch {torch.__version__}")        # in training.log only
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import sys
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

LOGGER = logging.getLogger("autounet")
LOGGER.setLevel(logging.DEBUG)
LOGGER.propagate = False  # no handler but the log files: never Python's last-resort printing to stderr
LOGGER.addHandler(logging.NullHandler())

_FORMAT = logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
_RENDERED_KEYS = ("sep", "end", "style", "justify", "markup", "highlight", "soft_wrap", "overflow", "no_wrap")


class Verbosity:
    """How much the terminal shows: ``quiet`` hides progress and notes, ``verbose`` adds the debug detail."""

    quiet = False
    verbose = False


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """Set the terminal's verbosity for the rest of the process (the top-level ``--quiet`` / ``--verbose``)."""
    Verbosity.quiet, Verbosity.verbose = quiet, verbose and not quiet


def _logging_to_files() -> bool:
    return any(isinstance(handler, logging.FileHandler) for handler in LOGGER.handlers)


class LoggedConsole(Console):
    """A Rich console whose every print also goes, as plain text, to the open log files.

    ``notes`` marks a console of progress and notes, which ``--quiet`` keeps off the terminal; results and
    errors (``notes=False``) are always shown.
    """

    def __init__(self, *args: Any, notes: bool = False, level: int = logging.INFO, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.notes = notes
        self.level = level
        self._plain = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=False,
                              soft_wrap=True)

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 (Rich's name)
        if not (self.notes and Verbosity.quiet):
            super().print(*objects, **kwargs)
        if _logging_to_files():
            with self._plain.capture() as captured:
                self._plain.print(*objects, **{k: v for k, v in kwargs.items() if k in _RENDERED_KEYS})
            for line in captured.get().rstrip("\n").splitlines():
                LOGGER.log(self.level, line)


def plain_line(text: str, notes: bool = True) -> None:
    """Print ``text`` to stderr (unless ``--quiet`` and it is a note) and log it."""
    if not (notes and Verbosity.quiet):
        print(text, file=sys.stderr, flush=True)
    LOGGER.info(text)


def debug(message: str) -> None:
    """Detail for the log files; on the terminal (stderr) only with ``--verbose``."""
    if Verbosity.verbose:
        print(message, file=sys.stderr, flush=True)
    LOGGER.debug(message)


def versions_and_machine() -> list[str]:
    """Lines naming the software versions and the machine, for the head of a log."""
    import os

    import numpy
    import torch

    from autounet import __version__

    lines = [f"autounet {__version__}, Python {platform.python_version()}, torch {torch.__version__}, "
             f"numpy {numpy.__version__}",
             f"machine: {platform.platform()}, {os.cpu_count()} CPU cores, command: {' '.join(sys.argv)}"]
    if torch.cuda.is_available():
        lines += [f"GPU {i}: {torch.cuda.get_device_name(i)}, "
                  f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.1f} GiB"
                  for i in range(torch.cuda.device_count())]
    else:
        lines.append("GPU: none (CUDA not available)")
    return lines


@contextlib.contextmanager
def log_to(path: Path, head: bool = True) -> Iterator[Path]:
    """Append everything the consoles print, and the debug detail, to the log file ``path`` while inside.

    With ``head`` the log starts with the versions and the machine. An exception leaving the block is written to
    the log with its traceback, even when the terminal shows only one sentence for it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_FORMAT)
    handler.setLevel(logging.DEBUG)
    LOGGER.addHandler(handler)
    try:
        if head:
            for line in versions_and_machine():
                handler.handle(LOGGER.makeRecord(LOGGER.name, logging.DEBUG, __file__, 0, line, None, None))
        yield path
    except BaseException as error:
        handler.handle(LOGGER.makeRecord(LOGGER.name, logging.ERROR, __file__, 0,
                                         f"stopped by {type(error).__name__}: {error}", None,
                                         sys.exc_info()))
        raise
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
