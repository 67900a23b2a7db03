"""Ensembling saved class probabilities: average them, then turn them into a label map."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import ImageReadError
from autounet.evaluation.cv_results import PROBABILITIES_KEY

REGION_THRESHOLD = 0.5


def load_probabilities(path: Path, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """The float32 ``(K, z, y, x)`` array ``probabilities`` of an npz file; checked against ``spatial_shape``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if PROBABILITIES_KEY not in data.files:
                raise ImageReadError(f"{path}: has no array '{PROBABILITIES_KEY}' (found {', '.join(data.files)}).")
            probabilities = np.asarray(data[PROBABILITIES_KEY], np.float32)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ImageReadError(f"{path}: cannot be read as an npz file ({error}).") from error
    if probabilities.ndim != 4 or probabilities.shape[1:] != tuple(spatial_shape):
        raise ImageReadError(f"{path}: probabilities of shape {probabilities.shape} do not fit the reference "
                             f"(K, {', '.join(map(str, spatial_shape))}).")
    return probabilities


def average_probabilities(paths: Sequence[Path], spatial_shape: tuple[int, ...]) -> np.ndarray:
    """The mean of the probabilities stored in ``paths`` (all with the same number of channels)."""
    total = None
    for path in paths:
        probabilities = load_probabilities(path, spatial_shape)
        if total is not None and probabilities.shape != total.shape:
            raise ImageReadError(f"{path}: {probabilities.shape[0]} probability channels, but {paths[0]} has "
                                 f"{total.shape[0]}.")
        total = probabilities if total is None else total + probabilities
    return total / len(paths)


def probabilities_to_labels(probabilities: np.ndarray, regions_class_order: list[int] | None = None) -> np.ndarray:
    """A label map ``(z, y, x)`` from probabilities ``(K, z, y, x)``.

    Classes: the channel of highest probability (channel k is label k). Regions: channel i above 0.5 writes
    ``regions_class_order[i]``, later regions overwriting earlier ones.

    Example:
        >>> p = np.array([[[[0.7, 0.2]]], [[[0.3, 0.8]]]])
        >>> probabilities_to_labels(p).tolist()
        [[[0, 1]]]
    """
    if regions_class_order is None:
        labels = np.argmax(probabilities, axis=0)
        return labels.astype(np.uint8 if probabilities.shape[0] <= 256 else np.int16)
    if len(regions_class_order) != probabilities.shape[0]:
        raise ValueError(f"{probabilities.shape[0]} region channels but regions_class_order has "
                         f"{len(regions_class_order)} entries")
    labels = np.zeros(probabilities.shape[1:], np.uint8 if max(regions_class_order) < 256 else np.int16)
    for channel, value in enumerate(regions_class_order):
        labels[probabilities[channel] > REGION_THRESHOLD] = value
    return labels
