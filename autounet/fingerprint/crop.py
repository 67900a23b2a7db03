"""The nonzero bounding box that every stage crops to."""

from __future__ import annotations

import numpy as np


def any_nonzero(image: np.ndarray) -> np.ndarray:
    """Voxels nonzero in any channel of ``image`` ``(c, z, y, x)``.

    Its bounding box is that of :func:`nonzero_mask` (filled holes lie inside
    the box), so code that needs only the box can skip the hole filling.
    """
    return np.any(image != 0, axis=0)


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    """Voxels nonzero in any channel of ``image`` ``(c, z, y, x)``, with enclosed holes filled."""
    from scipy import ndimage  # imported here: the fingerprint needs only any_nonzero and starts faster

    mask = any_nonzero(image)
    if mask.ndim == 3 and mask.shape[0] == 1:  # 2D: fill holes in the plane
        return ndimage.binary_fill_holes(mask[0])[None]
    return ndimage.binary_fill_holes(mask)


def bbox_of(mask: np.ndarray) -> list[list[int]]:
    """Per axis ``[start, stop)`` of the True voxels of ``mask``; the whole array when it is all False."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        box.append([int(hits[0]), int(hits[-1]) + 1] if hits.size else [0, mask.shape[axis]])
    return box


def crop_to_bbox(array: np.ndarray, box: list[list[int]]) -> np.ndarray:
    """The part of ``array`` inside ``box`` (over its last ``len(box)`` axes)."""
    lead = (slice(None),) * (array.ndim - len(box))
    return array[lead + tuple(slice(lo, hi) for lo, hi in box)]
