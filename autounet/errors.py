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
