"""Surface distances between two binary masks in millimetres: HD95 and normalised surface distance.

Definitions (documented in docs/evaluate.md):

- The *surface* of a mask is its voxels that have at least one face-neighbour outside the mask (the image
  edge counts as outside). For a single-slice image (z = 1) surfaces are taken in-plane.
- Directed distances ``d(A -> B)`` are, for every surface voxel of A, the Euclidean distance in mm (voxel
  centres, using the spacing) to the nearest surface voxel of B.
- **HD95** = max(95th percentile of d(A -> B), 95th percentile of d(B -> A)), percentiles with linear
  interpolation (the symmetric robust Hausdorff distance of MONAI and DeepMind's surface-distance package).
- **NSD** at tolerance tau = (#{a: d(a -> B) <= tau} + #{b: d(b -> A) <= tau}) / (|surface A| + |surface B|),
  counting surface voxels (not surface areas).

Both are undefined (NaN) when both masks are empty; when exactly one is empty HD95 is NaN (no distance exists)
and NSD is 0 (no surface point of the non-empty mask lies within tolerance of anything).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DEFAULT_NSD_TOLERANCE_MM = 1.0
"""Tolerance of the normalised surface distance when none is given."""


@dataclass(frozen=True)
class SurfaceScores:
    """HD95 (mm) and NSD (0..1) of one pair of masks; NaN where undefined."""

    hd95_mm: float
    nsd: float


def _crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union: surfaces and distances inside it are unchanged."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(hits[0], hits[-1] + 1))
    return a[tuple(box)], b[tuple(box)]


def surface_of(mask: np.ndarray) -> np.ndarray:
    """The boundary voxels of a binary mask: mask voxels with a face-neighbour outside it (or on the image edge)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def directed_distances(from_surface: np.ndarray, to_surface: np.ndarray,
                       spacing: tuple[float, ...]) -> np.ndarray:
    """For each voxel of ``from_surface`` the distance in mm to the nearest voxel of ``to_surface``."""
    distance_to = ndimage.distance_transform_edt(~to_surface, sampling=spacing)
    return distance_to[from_surface]


def surface_scores(reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float, float],
                   tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM) -> SurfaceScores:
    """HD95 and NSD between two boolean ``(z, y, x)`` masks with voxel ``spacing`` (z, y, x) in mm.

    Example:
        >>> a = np.zeros((1, 9, 9), bool); a[0, 2:7, 2:7] = True
        >>> surface_scores(a, a, (999.0, 1.0, 1.0))
        SurfaceScores(hd95_mm=0.0, nsd=1.0)
    """
    reference, prediction = np.asarray(reference, bool), np.asarray(prediction, bool)
    has_ref, has_pred = bool(reference.any()), bool(prediction.any())
    if not has_ref and not has_pred:
        return SurfaceScores(math.nan, math.nan)
    if not has_ref or not has_pred:
        return SurfaceScores(math.nan, 0.0)
    spacing = tuple(float(s) for s in spacing)
    if reference.shape[0] == 1:  # one slice: measure in-plane, the through-plane spacing is meaningless
        reference, prediction, spacing = reference[0], prediction[0], spacing[1:]
    reference, prediction = _crop_to_union(reference, prediction)
    ref_surface, pred_surface = surface_of(reference), surface_of(prediction)
    pred_to_ref = directed_distances(pred_surface, ref_surface, spacing)
    ref_to_pred = directed_distances(ref_surface, pred_surface, spacing)
    hd95 = max(float(np.percentile(pred_to_ref, 95)), float(np.percentile(ref_to_pred, 95)))
    within = int(np.count_nonzero(pred_to_ref <= tolerance_mm)) + int(np.count_nonzero(ref_to_pred <= tolerance_mm))
    nsd = within / (pred_to_ref.size + ref_to_pred.size)
    return SurfaceScores(hd95, nsd)
