"""One case into the network's space and back: the functions training and inference both use.

:func:`preprocess_case` crops to the nonzero bounding box, normalises each channel, and resamples to
the configuration's spacing; :func:`restore_probabilities` and :func:`restore_labels` undo the
resampling and the crop for a prediction.

Example:
    >>> data, seg, props = preprocess_case(image, geometry, label, plans, plans.configuration("3d_fullres"))  # doctest: +SKIP
    >>> restored = restore_labels(predicted_labels, props, plans.configuration("3d_fullres"))               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np

from autounet.errors import UserError
from autounet.fingerprint.crop import bbox_of, crop_to_bbox, nonzero_mask
from autounet.io.geometry import Geometry
from autounet.planning.plans import ConfigurationPlan, Plans
from autounet.preprocessing.normalize import normalize_image
from autounet.preprocessing.resample import (new_shape_for, resample_image, resample_labels, resample_volume,
                                             separate_axis)
from autounet.preprocessing.store import CaseProperties

OUTSIDE_MASK = -1
"""Label value of background voxels outside the nonzero mask in preprocessed label maps."""
LOCATIONS_PER_CLASS = 10_000
"""Foreground voxel locations kept per class and case (more for very large classes, see below)."""
LOCATIONS_MIN_FRACTION = 0.01
"""At least this fraction of a class's voxels is kept, so large structures stay well covered."""
LOCATIONS_SEED = 1234


def target_spacing_for(config: ConfigurationPlan, spacing: Sequence[float]) -> list[float]:
    """The spacing a case of ``spacing`` is resampled to: a 2D configuration keeps the case's own z spacing."""
    target = [float(s) for s in config.spacing]
    if config.is_2d:
        target[0] = float(spacing[0])
    return target


def label_dtype(max_label: int) -> np.dtype:
    """int8 for label values up to 127, int16 beyond (preprocessed maps also hold -1)."""
    return np.dtype(np.int8) if max_label <= 127 else np.dtype(np.int16)


def crop_labels(seg: np.ndarray, box: list[list[int]], mask: np.ndarray) -> np.ndarray:
    """A raw label map ``(z, y, x)`` cropped to ``box``, with background outside the cropped nonzero ``mask``
    set to :data:`OUTSIDE_MASK`."""
    cropped = crop_to_bbox(seg, box).astype(label_dtype(int(seg.max(initial=0))))
    cropped[(cropped == 0) & ~mask] = OUTSIDE_MASK
    return cropped


def labels_on_grid(seg: np.ndarray, image: np.ndarray, properties: CaseProperties,
                   config: ConfigurationPlan) -> np.ndarray:
    """Another label map of a raw case (e.g. a cascade's first-stage prediction) brought onto the case's
    preprocessed grid exactly as :func:`preprocess_case` brings its labels: ``(1, z, y, x)``, -1 outside
    the nonzero mask of ``image`` (the raw ``(c, Z, Y, X)`` image the properties were made from).

    Example:
        >>> prev = labels_on_grid(lowres_labels, image, store.load_properties("case_0"), plan)  # doctest: +SKIP
        >>> prev.shape[1:] == tuple(store.load_properties("case_0").shape_after_resample)       # doctest: +SKIP
        True
    """
    if tuple(seg.shape) != tuple(image.shape[1:]):
        raise UserError(f"case '{properties.case_id}': label shape {tuple(seg.shape)} differs from the image's "
                        f"{tuple(image.shape[1:])}.")
    box = properties.crop_bbox
    mask = crop_to_bbox(nonzero_mask(image), box)
    if list(mask.shape) != list(properties.shape_after_crop):
        raise UserError(f"case '{properties.case_id}': the raw image no longer matches its preprocessed "
                        f"properties; run `autounet preprocess --overwrite`.")
    return resample_labels(crop_labels(seg, box, mask), [float(s) for s in properties.geometry.spacing],
                           properties.target_spacing, config.resampling, properties.shape_after_resample)[None]


def one_hot_labels(seg: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """One float32 channel per value of ``values`` (in that order): 1 where ``seg`` equals it, else 0.

    ``seg`` is ``(z, y, x)``; negative values (outside the mask or the image) are 0 in every channel.

    Example:
        >>> one_hot_labels(np.array([[[0, 1, 2, -1]]]), [1, 2])[:, 0, 0].tolist()
        [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    """
    return np.stack([seg == value for value in values]).astype(np.float32)


def preprocess_case(image: np.ndarray, geometry: Geometry, seg: np.ndarray | None, plans: Plans,
                    config: ConfigurationPlan, case_id: str = "") -> tuple[np.ndarray, np.ndarray | None,
                                                                             CaseProperties]:
    """A raw case brought into the configuration's space.

    Returns the image ``(c, z, y, x)`` float32 (cropped, normalised, resampled), the label map
    ``(1, z, y, x)`` (int8, ``-1`` for background outside the nonzero mask; None when ``seg`` is
    None) and the properties needed to map predictions back to the raw image.
    """
    if image.ndim != 4:
        raise UserError(f"case '{case_id}': image must be (channels, z, y, x), got shape {image.shape}.")
    if seg is not None and tuple(seg.shape) != tuple(image.shape[1:]):
        raise UserError(f"case '{case_id}': label shape {tuple(seg.shape)} differs from the image's "
                        f"{tuple(image.shape[1:])}.")
    mask_full = nonzero_mask(image)
    box = bbox_of(mask_full)
    mask = crop_to_bbox(mask_full, box)
    del mask_full
    data = normalize_image(crop_to_bbox(image, box), config.normalization, config.use_mask_for_norm, mask,
                           plans.intensity_stats)
    cropped_labels = None if seg is None else crop_labels(seg, box, mask)
    spacing = [float(s) for s in geometry.spacing]
    target = target_spacing_for(config, spacing)
    shape_after_crop = list(data.shape[1:])
    new_shape = new_shape_for(shape_after_crop, spacing, target)
    resampled = resample_image(data, spacing, target, config.resampling, new_shape)
    del data
    out_seg = None
    if cropped_labels is not None:
        out_seg = resample_labels(cropped_labels, spacing, target, config.resampling, new_shape)[None]
    properties = CaseProperties(
        case_id=case_id, original_shape=[int(s) for s in image.shape[1:]], geometry=geometry, crop_bbox=box,
        shape_after_crop=shape_after_crop, shape_after_resample=list(new_shape), target_spacing=target)
    return resampled, out_seg, properties


def class_locations(seg: np.ndarray, labels: Sequence[int] | None = None, case_id: str = "",
                    seed: int = LOCATIONS_SEED) -> dict[int, np.ndarray]:
    """For each foreground label, a reproducible sample of its voxel coordinates ``(n, 3)`` (z, y, x), sorted.

    ``seg`` is ``(z, y, x)`` or ``(1, z, y, x)``; ``labels`` defaults to the positive values present.
    Per label, ``min(count, max(10_000, ceil(1 % of count)))`` voxels are kept, drawn without
    replacement with a generator seeded by ``seed`` and ``case_id``; an absent label gets ``(0, 3)``.
    """
    volume = seg[0] if seg.ndim == 4 else seg
    if labels is None:
        labels = [int(v) for v in np.unique(volume) if v > 0]
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "little")])
    flat = volume.reshape(-1)
    locations: dict[int, np.ndarray] = {}
    for label in labels:
        where = np.flatnonzero(flat == label)
        keep = min(where.size, max(LOCATIONS_PER_CLASS, math.ceil(LOCATIONS_MIN_FRACTION * where.size)))
        if keep < where.size:
            where = where[np.sort(rng.choice(where.size, keep, replace=False))]
        locations[int(label)] = np.stack(np.unravel_index(where, volume.shape), axis=1).astype(np.int32)
    return locations


def _restore_axis(properties: CaseProperties, config: ConfigurationPlan) -> int | None:
    return separate_axis(properties.target_spacing, properties.geometry.spacing,
                         config.resampling.anisotropy_threshold)


def _check_shape(shape: Sequence[int], properties: CaseProperties, what: str) -> None:
    if list(shape) != list(properties.shape_after_resample):
        raise ValueError(f"{what} of case '{properties.case_id}' has shape {list(shape)}, expected the "
                         f"preprocessed shape {properties.shape_after_resample}")


def _crop_slices(properties: CaseProperties) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) for lo, hi in properties.crop_bbox)


def restore_channel_in_crop(volume: np.ndarray, properties: CaseProperties, config: ConfigurationPlan) -> np.ndarray:
    """One class's probabilities ``(z, y, x)`` in the preprocessed space resampled to the crop box of the raw image
    (``properties.shape_after_crop``), with the label orders of the plan."""
    _check_shape(volume.shape, properties, "probabilities")
    plan = config.resampling
    return resample_volume(volume, properties.shape_after_crop, plan.order_seg, plan.order_seg_z,
                           _restore_axis(properties, config))


def crop_box(properties: CaseProperties) -> tuple[slice, ...]:
    """Where the crop box lies in the raw image."""
    return _crop_slices(properties)


def restore_probabilities(probabilities: np.ndarray, properties: CaseProperties,
                          config: ConfigurationPlan) -> np.ndarray:
    """Class probabilities ``(k, z, y, x)`` in the preprocessed space brought back to the raw image's shape.

    Each class is resampled with the label orders of the plan (linear; nearest on a separate
    through-plane axis) to the cropped shape, then placed into the full shape; outside the crop box
    class 0 has probability 1 and the others 0.
    """
    _check_shape(probabilities.shape[1:], properties, "probabilities")
    out = np.zeros((probabilities.shape[0], *properties.original_shape), dtype=np.float32)
    out[0] = 1.0
    inside = _crop_slices(properties)
    for k in range(probabilities.shape[0]):
        out[(k, *inside)] = restore_channel_in_crop(probabilities[k], properties, config)
    return out


def restore_labels(labels: np.ndarray, properties: CaseProperties, config: ConfigurationPlan) -> np.ndarray:
    """A label map ``(z, y, x)`` in the preprocessed space brought back to the raw image's shape.

    The same per-label interpolation as preprocessing (linear by default, the label with the
    largest interpolated indicator wins), computed in chunks on the output grid so memory stays
    bounded; negative values (outside the nonzero mask) become 0, and so does everything outside
    the crop box.
    """
    _check_shape(labels.shape, properties, "label map")
    restored = resample_labels(labels, properties.target_spacing, properties.geometry.spacing, config.resampling,
                               properties.shape_after_crop)
    dtype = np.uint8 if int(labels.max(initial=0)) <= 255 else np.int32
    out = np.zeros(properties.original_shape, dtype=dtype)
    out[_crop_slices(properties)] = np.maximum(restored, 0)
    return out
