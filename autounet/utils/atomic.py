"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash at any moment leaves either the old file or the new one, never a
half-written file that looks whole. A write that fails because the disk is full
or the folder is not writable becomes a :class:`~autounet.errors.StorageError`:
one sentence naming the folder and what to do, with the temporary file removed.

A writer holds a ``flock`` on its temporary file while it writes; the kernel drops it when the writer dies,
however it dies. So the temporary file of a killed write (SIGKILL leaves it behind) is told from one still being
written, and the next run removes it (:func:`remove_abandoned_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from autounet.errors import StorageError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
NEARLY_FULL_BYTES = 1 << 20
"""A writer that fails with its own error (SimpleITK raises RuntimeError) while the disk has less than this
free is taken to have failed for lack of space."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; flush it to disk and rename it onto ``target`` on success.

    The temporary name keeps the target's suffixes (``.nii.gz``, ``.npy``) so
    that libraries which choose a format by file ending write the right one.
    ``size`` (bytes about to be written, if known) makes a disk-full message say how much is needed.

    Example:
        >>> with atomic_path("out/case.nii.gz") as tmp:  # doctest: +SKIP
        ...     sitk.WriteImage(image, str(tmp))
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _locked_temporary(target)
    except OSError as error:
        raise _converted(error, target, size) from error
    try:
        yield tmp
        # mkstemp creates files readable by the owner alone; give the result the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        _flush_to_disk(tmp)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, Exception) and not isinstance(error, StorageError):
            converted = _converted(error, target, size)
            if converted is not error:
                raise converted from error
        raise
    finally:
        os.close(fd)


TEMPORARY_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp")
"""The name of a temporary file of :func:`atomic_path`: ``.NAME.`` mkstemp's 8 random characters ``.tmp...``."""
_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})


def _locked_temporary(target: Path) -> tuple[int, Path]:
    """A new temporary file beside ``target`` and its open descriptor, holding the file's ``flock`` (where the
    file system has flock) so that no cleaner takes it for the rest of a killed write."""
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + "".join(target.suffixes),
                                    dir=target.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a cleaner is looking at it and will remove it
            continue
        except OSError as error:
            if error.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            return fd, Path(name)
        # A cleaner may have removed it between its creation and the lock: then make another.
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, Path(name)
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_abandoned_temporaries(folder: str | os.PathLike, name: str | None = None) -> int:
    """Delete the temporary files in ``folder`` (of target ``name`` alone, if given) whose writer is gone: a
    write killed mid-way leaves one behind. One still being written is locked by its writer and kept; on a file
    system without ``flock`` none is removed. Returns how many were removed.

    Example:
        >>> remove_abandoned_temporaries(Path("predictions"))  # doctest: +SKIP
        1
    """
    folder = Path(folder)
    removed = 0
    try:
        candidates = [entry.path for entry in os.scandir(folder) if TEMPORARY_NAME.match(entry.name)
                      and (name is None or entry.name.startswith(f".{name}.")) and entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # renamed into place or removed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
                removed += 1
        except BlockingIOError:
            continue  # its writer is alive
        except OSError as error:
            if error.errno in _NO_FLOCK:
                return removed
        finally:
            os.close(fd)
    return removed


def _flush_to_disk(path: Path) -> None:
    """Make the file's bytes durable before it is renamed into place (where a full disk is often reported)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _converted(error: BaseException, target: Path, size: int | None) -> BaseException:
    """``error`` as a :class:`StorageError` when it says the disk is full or the folder not writable."""
    folder = target.parent
    code = error.errno if isinstance(error, OSError) else None
    if not isinstance(error, OSError):
        free = _free_bytes(folder)
        code = errno.ENOSPC if free is not None and free < NEARLY_FULL_BYTES else None
    return storage_error(code, folder, target.name, size) or error


def storage_error(code: int | None, folder: Path, name: str | None = None,
                  size: int | None = None) -> StorageError | None:
    """The one-sentence error for a write into ``folder`` that failed with errno ``code``; None when the
    failure is neither a full disk nor a folder that cannot be written."""
    writing = f" while writing {name}" if name else ""
    if code in DISK_FULL_ERRNOS:
        free = _free_bytes(folder)
        needed = f"about {format_bytes(size)} more is needed, " if size else ""
        left = f"{format_bytes(free)} is free" if free is not None else "its free space is unknown"
        return StorageError(f"{folder}: the disk is full{writing} ({needed}{left}); free space on that disk or "
                            f"choose another folder, then rerun (no half-written file was kept).", code)
    if code in NOT_WRITABLE_ERRNOS:
        return StorageError(f"{folder}: cannot be written{writing} ({os.strerror(code).lower()}); make it "
                            f"writable or choose another folder, then rerun.", code)
    return None


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` if missing and prove a file can be written there, so a read-only, foreign or full
    place is refused before any work starts (a :class:`StorageError` naming the folder)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"{folder}: is a file, not a folder; choose a folder to write into.")
    probe = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".autounet-write-check.", dir=folder)
        os.write(fd, b"\0")
        os.close(fd)
        _flush_to_disk(Path(probe))
    except OSError as error:
        converted = storage_error(error.errno, folder)
        raise (converted or StorageError(f"{folder}: cannot be written ({error.strerror or error}); choose "
                                         f"another folder.")) from error
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def format_bytes(count: int | float | None) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(count or 0)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _free_bytes(folder: Path) -> int | None:
    with contextlib.suppress(OSError):
        return shutil.disk_usage(folder).free
    return None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, flushed to disk."""
    with atomic_path(target, len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_bytes(target, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def save_npy(target: str | os.PathLike, array: np.ndarray) -> None:
    """Save ``array`` as a ``.npy`` file (memory-mappable) atomically, flushed to disk."""
    with atomic_path(target, int(array.nbytes)) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
