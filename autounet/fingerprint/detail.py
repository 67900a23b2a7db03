"""How much of a label map survives a coarser in-plane grid: the evidence for trading resolution for context.

A time budget on slow hardware often cannot afford a patch that covers the structures at full resolution.
Halving the patch keeps the detail and loses the context; halving the resolution keeps the context and loses
the detail. Which loss is cheaper depends on the structures: PH2's skin lesions (hundreds of pixels across)
come back from a 4x coarser grid almost unchanged, Hippocampus's small structures do not.
"""

from __future__ import annotations

import numpy as np

COARSENING_FACTORS = (2, 4)
"""In-plane factors measured for every case (index i of ``CaseFingerprint.coarsened_label_dice``)."""
MAX_SLICES = 16
"""At most this many slices with foreground are measured per 3D case (evenly spread), to bound the cost."""


def _linear_resize(array: np.ndarray, axis: int, new: int) -> np.ndarray:
    """``array`` linearly interpolated to ``new`` samples along ``axis``, pixel centres aligned (edges clamped).
    (numpy alone: fingerprint workers do not import scipy.)"""
    old = array.shape[axis]
    position = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, old - 1)
    shape = [1] * array.ndim
    shape[axis] = new
    weight = (position - lower).reshape(shape).astype(np.float32)
    low, high = np.take(array, lower, axis=axis), np.take(array, upper, axis=axis)
    return low + (high - low) * weight


def _round_trip(planes: np.ndarray, factor: int, values: list[int]) -> np.ndarray:
    """``planes`` ``(n, y, x)`` brought to a grid ``factor`` times coarser in-plane and back, each label's
    indicator interpolated linearly and every pixel taking the label with the largest value (as the pipeline
    does for labels on the way in and for probabilities on the way out)."""
    _, height, width = planes.shape
    small = (max(1, round(height / factor)), max(1, round(width / factor)))
    scores = []
    for value in values:
        indicator = (planes == value).astype(np.float32)
        down = _linear_resize(_linear_resize(indicator, 1, small[0]), 2, small[1])
        scores.append(_linear_resize(_linear_resize(down, 1, height), 2, width))
    return np.asarray(values)[np.argmax(np.stack(scores), axis=0)]


def coarsened_label_dice(label: np.ndarray, factors: tuple[int, ...] = COARSENING_FACTORS) -> list[float]:
    """Mean Dice of the foreground labels of ``label`` ``(z, y, x)`` after a round trip through an in-plane
    grid ``factor`` times coarser, one value per factor (1.0 for a label map without foreground).

    Example:
        >>> disk = np.zeros((1, 64, 64), np.uint8); disk[0, 16:48, 16:48] = 1
        >>> [round(d, 3) for d in coarsened_label_dice(disk)]
        [1.0, 0.998]
    """
    foreground_values = [int(v) for v in np.unique(label) if v != 0]
    if not foreground_values:
        return [1.0 for _ in factors]
    slices = np.flatnonzero(np.any(label != 0, axis=(1, 2)))
    if slices.size > MAX_SLICES:
        slices = slices[np.linspace(0, slices.size - 1, MAX_SLICES).round().astype(int)]
    planes = label[slices]
    values = [0, *foreground_values]
    result = []
    for factor in factors:
        back = _round_trip(planes, factor, values)
        dices = []
        for value in foreground_values:
            reference, kept = planes == value, back == value
            dices.append(2.0 * np.logical_and(reference, kept).sum() / (reference.sum() + kept.sum()))
        result.append(float(np.mean(dices)))
    return result
