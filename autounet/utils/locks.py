"""Folder locks, so two autounet commands never work on the same thing at once.

``exclusive(folder, what)`` holds ``folder/.autounet.lock`` for one writer (``preprocess`` of a dataset,
``predict`` into an output folder); ``shared(folder, what)`` lets many readers in together but keeps writers
out (training runs reading one preprocessed cache). A second command is refused with a
:class:`~autounet.errors.LockedError` naming the holder (pid, host, command, since when).

The lock is an advisory ``flock`` on the file, which the kernel releases when its process dies, however it
dies, so a killed command never leaves a folder locked. Where the file system offers no ``flock`` (some
network mounts), the lock falls back to the holder's pid written in the file: a lock whose process no longer
runs on this host is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from autounet.errors import LockedError

LOCK_FILE = ".autounet.lock"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock alone while the block runs (the folder is created if missing).

    Example:
        >>> with exclusive(Path("predictions"), "autounet predict"):  # doctest: +SKIP
        ...     predict_folder(predictor, inputs, Path("predictions"))
    """
    with _locked(Path(folder), what, fcntl.LOCK_EX) as path:
        yield path


@contextlib.contextmanager
def shared(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock together with other readers while the block runs; writers are kept out."""
    with _locked(Path(folder), what, fcntl.LOCK_SH) as path:
        yield path


@contextlib.contextmanager
def _locked(folder: Path, what: str, mode: int) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = _acquire(path, folder, what, mode)
    try:
        if mode == fcntl.LOCK_EX:
            _write_holder(fd, what)
        yield path
    finally:
        if mode == fcntl.LOCK_EX:
            # Removed while still held; a waiter that opened the old file sees it is gone and opens anew.
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


def _acquire(path: Path, folder: Path, what: str, mode: int) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _refusal(path, folder, what) from None
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            _check_holder_gone(fd, path, folder, what)
            return fd
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file as we opened it: lock the new one


def _check_holder_gone(fd: int, path: Path, folder: Path, what: str) -> None:
    """Without ``flock`` (best effort): refuse while the recorded holder still runs; a holder on another host
    cannot be checked, so it counts as running."""
    holder = _read_holder(path)
    if not holder:
        return
    host = socket.gethostname()
    ours = holder.get("pid") == os.getpid() and holder.get("host") == host
    gone = holder.get("host") == host and not _alive(int(holder.get("pid") or 0))
    if not ours and not gone:
        os.close(fd)
        raise _refusal(path, folder, what)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_holder(fd: int, what: str) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": what,
              "argv": " ".join(sys.argv[1:])[:300], "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _read_holder(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text() or "{}")
        if isinstance(record, dict):
            return record
    return {}


def _refusal(path: Path, folder: Path, what: str) -> LockedError:
    holder = _read_holder(path)
    if holder:
        who = (f"{holder.get('command', 'another autounet command')} (pid {holder.get('pid')} on "
               f"{holder.get('host')}, since {holder.get('since')})")
    else:
        who = "another autounet command (e.g. training reading it)"
    return LockedError(f"{folder}: {who} is working on it, so {what} cannot start now; wait for it to finish "
                       f"or stop it (a process that ends, even killed, releases {path.name} by itself).")
