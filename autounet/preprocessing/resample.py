"""Resampling of images and label maps between spacings (shared by preprocessing and inference).

Conventions (the same as scikit-image's ``resize``, which nnU-Net uses): output voxel ``o`` on an
axis of ``old`` input and ``new`` output voxels samples the input at ``(o + 0.5) * old / new - 0.5``
(voxel centres aligned, extent kept), and samples beyond the edge repeat the edge voxel.

Spline orders above 1 may overshoot at sharp edges, so their result is clipped to the range of the
array being resampled (per slice when slices are resampled on their own).

On strongly anisotropic data (the coarsest axis more than ``anisotropy_threshold`` times coarser
than the finest) that coarse axis is resampled on its own with the ``*_z`` order (nearest neighbour
by default) after the in-plane resampling, so thick slices are not blended into each other.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from autounet.planning.plans import ResamplingPlan

SPLINE_PAD = 12
"""Edge voxels added before the cubic prefilter (as scipy does), so the boundary matches ``mode="nearest"``."""
LABEL_CHUNK_VOXELS = 8_000_000
"""Output voxels per chunk when resampling label maps class by class (bounds the memory used)."""


def new_shape_for(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> list[int]:
    """The shape an array of ``shape`` at ``spacing`` has at ``target_spacing`` (same physical extent).

    Example:
        >>> new_shape_for((10, 20, 20), (3.0, 1.0, 1.0), (1.5, 2.0, 2.0))
        [20, 10, 10]
    """
    return [max(1, int(round(s * sp / t))) for s, sp, t in zip(shape, spacing, target_spacing)]


def separate_axis(spacing: Sequence[float], target_spacing: Sequence[float], threshold: float) -> int | None:
    """The axis to resample on its own (with the ``*_z`` order), or None to resample all axes together.

    The source spacing decides first, then the target spacing: when one of them has a single axis
    more than ``threshold`` times coarser than its finest axis, that axis is returned. Two or three
    equally coarse axes mean there is no single through-plane axis, so None.

    Example:
        >>> separate_axis((3.0, 0.8, 0.8), (3.0, 0.8, 0.8), 3.0) is None
        True
        >>> separate_axis((5.0, 0.8, 0.8), (5.0, 0.8, 0.8), 3.0)
        0
    """
    for candidate in (spacing, target_spacing):
        values = np.asarray(candidate, dtype=float)
        if values.max() / values.min() > threshold:
            coarse = np.flatnonzero(values == values.max())
            return int(coarse[0]) if coarse.size == 1 else None
    return None


def _source_coordinates(old: int, new: int) -> np.ndarray:
    """Where each of ``new`` output voxels samples an axis of ``old`` input voxels, clamped to the input."""
    coords = (np.arange(new, dtype=np.float64) + 0.5) * (old / new) - 0.5
    return np.clip(coords, 0, old - 1)


def nearest_indices(old: int, new: int) -> np.ndarray:
    """Input index of each output voxel for nearest-neighbour resampling of one axis."""
    return np.minimum(np.floor(_source_coordinates(old, new) + 0.5), old - 1).astype(np.intp)


def linear_weights(old: int, new: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For linear resampling of one axis: lower index, upper index and upper weight of each output voxel."""
    coords = _source_coordinates(old, new)
    lower = np.floor(coords).astype(np.intp)
    upper = np.minimum(lower + 1, old - 1)
    return lower, upper, (coords - lower).astype(np.float32)


def linear_along(array: np.ndarray, axis: int, new: int) -> np.ndarray:
    """``array`` linearly resampled to ``new`` voxels along ``axis`` (float32)."""
    old = array.shape[axis]
    if old == new:
        return array.astype(np.float32, copy=False)
    lower, upper, weight = linear_weights(old, new)
    shape = [1] * array.ndim
    shape[axis] = new
    weight = weight.reshape(shape)
    low = np.take(array, lower, axis=axis).astype(np.float32, copy=False)
    high = np.take(array, upper, axis=axis).astype(np.float32, copy=False)
    # low + (high - low) * weight, in place: two output-sized arrays instead of three (same values)
    high -= low
    high *= weight
    high += low
    return high


def _resample_axis(array: np.ndarray, axis: int, new: int, order: int) -> np.ndarray:
    """One axis of ``array`` resampled to ``new`` voxels with spline ``order`` (0 nearest, 1 linear)."""
    old = array.shape[axis]
    if old == new:
        return array
    if order == 0:
        return np.take(array, nearest_indices(old, new), axis=axis)
    if order == 1:
        return linear_along(array, axis, new)
    factors = [1.0] * array.ndim
    factors[axis] = new / old
    return ndimage.zoom(array.astype(np.float32, copy=False), factors, order=order, mode="nearest",
                        grid_mode=True)


def _cubic_weights(old: int, new: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """First of the four taps and the four cubic B-spline weights of each output voxel on one axis."""
    coords = (np.arange(new, dtype=np.float64) + 0.5) * (old / new) - 0.5
    first = np.floor(coords).astype(np.intp)
    t = (coords - first).astype(np.float32)
    weights = [(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6]
    return first - 1, weights


def cubic_zoom(volume: np.ndarray, new_shape: Sequence[int]) -> np.ndarray:
    """``volume`` resampled with a cubic B-spline, the same values as ``scipy.ndimage.zoom(order=3,
    mode="nearest", grid_mode=True)`` (to float32 precision) at a fraction of the cost.

    The spline is a tensor product, so its evaluation is done one axis at a time (4 taps per axis
    instead of 64 per voxel); axes whose size does not change are left alone, which is exact since
    a spline evaluated at its own knots gives back the samples.
    """
    axes = [a for a in range(volume.ndim) if volume.shape[a] != new_shape[a]]
    # Edge padding stands in for the 'nearest' boundary: the prefilter sees the edge value repeated.
    pad = [(SPLINE_PAD, SPLINE_PAD) if a in axes else (0, 0) for a in range(volume.ndim)]
    # The prefilter works on each line in double precision and stores float32 between axes, in place:
    # a float64 copy of a 157 M-voxel CT would add 1.3 GB to the peak for changes below 1e-6.
    result = np.pad(volume.astype(np.float32, copy=False), pad, mode="edge")
    for axis in axes:
        ndimage.spline_filter1d(result, order=3, axis=axis, output=result, mode="nearest")
    for axis in sorted(axes, key=lambda a: new_shape[a] / volume.shape[a]):  # shrink first: less work after
        first, weights = _cubic_weights(volume.shape[axis], new_shape[axis])
        shape = [1] * result.ndim
        shape[axis] = new_shape[axis]
        accumulated = np.take(result, first + SPLINE_PAD, axis=axis)
        accumulated *= weights[0].reshape(shape)
        tap = np.empty_like(accumulated)
        for k in range(1, 4):
            # mode="clip" (the taps always lie inside the padding) lets take write into ``tap`` unbuffered.
            np.take(result, first + SPLINE_PAD + k, axis=axis, out=tap, mode="clip")
            tap *= weights[k].reshape(shape)
            accumulated += tap
        del tap
        result = accumulated
    return result


def _zoom(volume: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    """All axes of ``volume`` resampled together with spline ``order``."""
    if tuple(volume.shape) == tuple(new_shape):
        return volume
    if order <= 1:
        for axis in range(volume.ndim):
            volume = _resample_axis(volume, axis, new_shape[axis], order)
        return volume
    if order == 3:
        result = cubic_zoom(volume, new_shape)
    else:
        factors = [n / o for n, o in zip(new_shape, volume.shape)]
        result = ndimage.zoom(volume.astype(np.float32, copy=False), factors, order=order, mode="nearest",
                              grid_mode=True)
    # Higher-order splines overshoot at sharp edges; keep the result within the input's range.
    return np.clip(result, volume.min(), volume.max(), out=result)


def resample_volume(volume: np.ndarray, new_shape: Sequence[int], order: int, order_z: int,
                    axis: int | None) -> np.ndarray:
    """One 3D float volume resampled to ``new_shape``; ``axis`` (if given) is resampled on its own with ``order_z``.

    Example:
        >>> resample_volume(np.ones((4, 8, 8), np.float32), (2, 16, 16), 3, 0, axis=0).shape
        (2, 16, 16)
    """
    volume = np.asarray(volume, dtype=np.float32)
    if tuple(volume.shape) == tuple(new_shape):
        return volume.copy()
    if axis is None:
        return _zoom(volume, new_shape, order).astype(np.float32, copy=False)
    moved = np.moveaxis(volume, axis, 0)
    target = [new_shape[axis]] + [s for a, s in enumerate(new_shape) if a != axis]
    if tuple(moved.shape[1:]) != tuple(target[1:]):
        moved = np.stack([_zoom(plane, target[1:], order) for plane in moved])
    moved = _resample_axis(moved, 0, target[0], order_z)
    return np.ascontiguousarray(np.moveaxis(moved, 0, axis), dtype=np.float32)


def resample_image(data: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float],
                   plan: ResamplingPlan, new_shape: Sequence[int] | None = None) -> np.ndarray:
    """Every channel of ``data`` ``(c, z, y, x)`` brought from ``spacing`` to ``target_spacing`` (float32).

    ``new_shape`` overrides the shape computed from the spacings (used when restoring a case to the
    exact shape it had). Third-order spline by default; see the module docstring for anisotropy.
    """
    shape = list(new_shape) if new_shape is not None else new_shape_for(data.shape[1:], spacing, target_spacing)
    axis = separate_axis(spacing, target_spacing, plan.anisotropy_threshold)
    result = np.empty((data.shape[0], *shape), dtype=np.float32)
    for c, channel in enumerate(data):
        result[c] = resample_volume(channel, shape, plan.order_data, plan.order_data_z, axis)
    return result


def resample_labels(labels: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float],
                    plan: ResamplingPlan, new_shape: Sequence[int] | None = None) -> np.ndarray:
    """A label map ``(z, y, x)`` brought from ``spacing`` to ``target_spacing``, never inventing a value.

    Each label's indicator (one-hot) is interpolated with ``plan.order_seg`` (``order_seg_z`` on a
    separate through-plane axis) and every output voxel takes the label with the largest
    interpolated value (the lower label on ties). The output is computed in chunks of the output's
    first axis, so memory stays near a few chunk-sized float arrays whatever the number of labels.
    """
    shape = list(new_shape) if new_shape is not None else new_shape_for(labels.shape, spacing, target_spacing)
    if tuple(labels.shape) == tuple(shape):
        return labels.copy()
    axis = separate_axis(spacing, target_spacing, plan.anisotropy_threshold)
    order, order_z = plan.order_seg, plan.order_seg_z
    if order == 0 and (axis is None or order_z == 0):
        result = labels
        for a in range(labels.ndim):
            result = np.take(result, nearest_indices(labels.shape[a], shape[a]), axis=a)
        return np.ascontiguousarray(result)
    chunk_axis = 0 if axis is None else axis
    moved = np.moveaxis(labels, chunk_axis, 0)
    target = [shape[chunk_axis]] + [s for a, s in enumerate(shape) if a != chunk_axis]
    first_order = order if axis is None else order_z
    values = np.unique(labels)
    out = np.empty(target, dtype=labels.dtype)
    rows = max(1, LABEL_CHUNK_VOXELS // max(1, int(np.prod(target[1:]))))
    if first_order not in (0, 1):
        rows = target[0]  # higher orders need the whole axis at once
    for start in range(0, target[0], rows):
        stop = min(target[0], start + rows)
        out[start:stop] = _labels_chunk(moved, values, target, start, stop, order, first_order)
    return np.ascontiguousarray(np.moveaxis(out, 0, chunk_axis))


def _labels_chunk(moved: np.ndarray, values: np.ndarray, target: list[int], start: int, stop: int,
                  order: int, first_order: int) -> np.ndarray:
    """Output rows ``start:stop`` (first axis) of a label map resampled by per-label interpolation."""
    old = moved.shape[0]
    if first_order == 0:
        source_rows = nearest_indices(old, target[0])[start:stop]
        needed, position = np.unique(source_rows, return_inverse=True)
    elif first_order == 1:
        lower, upper, weight = linear_weights(old, target[0])
        lower, upper, weight = lower[start:stop], upper[start:stop], weight[start:stop]
        needed, position = np.unique(np.concatenate([lower, upper]), return_inverse=True)
        low_pos, high_pos = position[: stop - start], position[stop - start:]
    else:
        needed = np.arange(old)
    slab = moved[needed]
    best = np.full([stop - start] + target[1:], -1.0, dtype=np.float32)
    result = np.zeros(best.shape, dtype=moved.dtype)
    for value in values:
        indicator = (slab == value).astype(np.float32)
        plane = np.stack([_zoom(p, target[1:], order) for p in indicator])
        if first_order == 0:
            score = plane[position]
        elif first_order == 1:
            score = plane[low_pos] + (plane[high_pos] - plane[low_pos]) * weight[:, None, None]
        else:
            score = _resample_axis(plane, 0, target[0], first_order)[start:stop]
        better = score > best
        best[better] = score[better]
        result[better] = value
    return result
