"""User-facing errors.

A :class:`UserError` carries one sentence for a person: what is wrong and with
which file. The CLI prints it without a traceback and exits non-zero.
Programming errors are ordinary exceptions and keep their traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad path, bad file, bad option)."""

    exit_code = 1


class DatasetNotFoundError(UserError):
    """The named dataset is not under the data root."""


class InvalidDatasetError(UserError):
    """dataset.json or the dataset's files are not usable."""


class ImageReadError(UserError):
    """An image or label file could not be read."""


class MissingArtifactError(UserError):
    """An earlier stage's output is missing (e.g. plans.json before preprocess)."""


class PlanningError(UserError):
    """No plan that can train fits the request."""


class StorageError(UserError, OSError):
    """A file could not be written: the disk is full, or the folder is read-only or not writable.

    It is also an ``OSError`` carrying the original ``errno`` (``ENOSPC``, ``EACCES``, ...), so code that
    already handles failed writes keeps doing so, in worker processes too.
    """

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.errno = code

    def __reduce__(self):
        return type(self), (str(self), self.errno)


class SchemaError(UserError, TypeError):
    """A JSON file does not fit the record it should hold: an unknown key, a wrong type, a missing field or a
    schema version newer than this autounet.

    It is also a ``TypeError``, so loaders that wrap type errors with their file's name keep doing so.
    """

    def __repr__(self) -> str:
        # Loaders that embed the error with ``{error!r}`` then show the sentence, not the class name.
        return str(self)


class CorruptCacheError(UserError):
    """A preprocessed case is unreadable, inconsistent, or made from raw files that changed since."""


class LockedError(UserError):
    """Another autounet process is working on the same dataset or folder right now."""
