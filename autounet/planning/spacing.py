"""Target spacing and the median image shape at a spacing (pure functions of the fingerprint)."""

from __future__ import annotations

import numpy as np

from autounet.fingerprint import Fingerprint
from autounet.planning.constants import ANISOTROPIC_AXIS_PERCENTILE, ANISOTROPY_RATIO


def target_spacing(fingerprint: Fingerprint) -> list[float]:
    """The spacing (z, y, x) 3D full-resolution data is resampled to.

    The median spacing per axis; but when one axis is more than
    ``ANISOTROPY_RATIO`` times coarser than the others and also has that many
    times fewer voxels, it takes the 10th percentile of the cases' spacings
    on that axis instead (so thin-slice cases are not thrown away), never
    finer than the coarsest of the other axes.

    Example:
        >>> target_spacing(fp_with_3mm_slices)  # doctest: +SKIP
        [3.0, 0.8, 0.8]
    """
    spacings = fingerprint.spacings
    target = np.median(spacings, axis=0)
    if fingerprint.is_2d:
        return [float(v) for v in target]
    shape = np.median(fingerprint.shapes_after_crop, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(len(target)) if a != worst]
    coarse_spacing = target[worst] > ANISOTROPY_RATIO * max(target[a] for a in others)
    few_voxels = shape[worst] * ANISOTROPY_RATIO < min(shape[a] for a in others)
    if coarse_spacing and few_voxels:
        value = float(np.percentile(spacings[:, worst], ANISOTROPIC_AXIS_PERCENTILE))
        target[worst] = max(value, max(target[a] for a in others) + 1e-5)
    return [float(v) for v in target]


def median_shape_at(fingerprint: Fingerprint, spacing: list[float]) -> list[int]:
    """The median cropped image shape (z, y, x) after resampling every case to ``spacing``."""
    scaled = fingerprint.shapes_after_crop * fingerprint.spacings / np.asarray(spacing, dtype=float)
    return [max(1, int(round(v))) for v in np.median(scaled, axis=0)]


def is_anisotropic(spacing: list[float]) -> bool:
    """True when the coarsest axis is more than ``ANISOTROPY_RATIO`` times the finest."""
    return max(spacing) / min(spacing) > ANISOTROPY_RATIO
