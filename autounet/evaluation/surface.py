"""Surface distances between two binary masks in millimetres: HD95 and normalised surface distance.

Definitions (documented in docs/evaluate.md):

- The *surface* of a mask is the boundary of the union of its voxels: the voxel faces (edges, in 2D) that
  separate a mask voxel from a voxel outside it (the image edge counts as outside). Each face is one *surface
  element*, located at the face's centre and weighted by its area in mm^2 (its length in mm in 2D), so
  anisotropic spacing weights faces by the area they really cover. For a single-slice image (z = 1) surfaces
  are taken in-plane.
- Where some voxels do not count (the reference's ignore label), a face that touches such a voxel on either
  side is not a surface element: the true boundary there is unknown, so it is neither scored nor a target.
- Directed distances ``d(A -> B)`` are, for every surface element of A, the Euclidean distance in mm from its
  centre to the nearest point of B's surface (the union of B's faces), so coinciding surfaces are 0 apart.
- **NSD** at tolerance tau (Nikolov et al. 2021) = (area of A's surface within tau of B's + area of B's surface
  within tau of A's) / (area of A's surface + area of B's surface).
- **HD95** = max(p95 of d(A -> B), p95 of d(B -> A)), where the area-weighted p95 is the smallest distance
  within which at least 95 % of that surface's area lies (as DeepMind's surface-distance package defines it).

Both are undefined (NaN) when both masks (or both surfaces) are empty; when exactly one is empty HD95 is NaN (no
distance exists) and NSD is 0 (no surface of the non-empty mask lies within tolerance of anything).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

DEFAULT_NSD_TOLERANCE_MM = 1.0
"""Tolerance of the normalised surface distance when none is given."""

_ROUNDING = 1e-9
"""Relative slack on the tolerance so that a distance equal to it in exact arithmetic counts as within."""


@dataclass(frozen=True)
class SurfaceScores:
    """HD95 (mm) and NSD (0..1) of one pair of masks; NaN where undefined."""

    hd95_mm: float
    nsd: float


@dataclass(frozen=True)
class SurfaceElements:
    """The faces of a mask's boundary: ``half_index`` (n, ndim) is twice each face centre's voxel index (so an
    integer), ``normals`` (n,) the axis each face is perpendicular to, ``centres_mm`` (n, ndim) and
    ``areas_mm2`` (n,)."""

    half_index: np.ndarray
    normals: np.ndarray
    centres_mm: np.ndarray
    areas_mm2: np.ndarray


def _crop_box(union: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of ``union`` grown by one voxel (clipped to the image), so that the neighbours of every
    mask voxel, and their validity, stay inside it."""
    box = []
    for axis in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(hits[0] - 1, 0), min(hits[-1] + 2, union.shape[axis])))
    return tuple(box)


def surface_elements(mask: np.ndarray, spacing: tuple[float, ...],
                     valid: np.ndarray | None = None) -> SurfaceElements:
    """The boundary faces of a boolean mask with their centres (mm, voxel centres at ``index * spacing``) and
    areas. Faces touching a voxel where ``valid`` is False are left out; outside the image counts as valid.

    Example:
        >>> square = np.zeros((4, 4), bool); square[1:3, 1:3] = True
        >>> float(surface_elements(square, (1.0, 2.0)).areas_mm2.sum())  # 2 + 2 edges of 2 mm, 2 + 2 of 1 mm
        12.0
    """
    mask = np.pad(np.asarray(mask, bool), 1)
    ok = None if valid is None else np.pad(np.asarray(valid, bool), 1, constant_values=True)
    spacing_arr = np.asarray(spacing, float)
    half_index, normals, areas = [], [], []
    for axis in range(mask.ndim):
        low = tuple(slice(0, -1) if a == axis else slice(None) for a in range(mask.ndim))
        high = tuple(slice(1, None) if a == axis else slice(None) for a in range(mask.ndim))
        faces = mask[low] != mask[high]
        if ok is not None:
            faces &= ok[low] & ok[high]
        # face k along `axis` lies between padded voxels k and k + 1, i.e. original voxels k - 1 and k
        index = 2 * (np.argwhere(faces) - 1)
        index[:, axis] += 1
        half_index.append(index)
        normals.append(np.full(len(index), axis))
        areas.append(np.full(len(index), float(np.prod(np.delete(spacing_arr, axis)))))
    half_index = np.concatenate(half_index)
    return SurfaceElements(half_index, np.concatenate(normals), half_index * (spacing_arr / 2),
                           np.concatenate(areas))


def lattice_points(elements: SurfaceElements, spacing: tuple[float, ...]) -> np.ndarray:
    """Every point of the surface on the half-voxel lattice (face centres, edge midpoints, corners), in mm.

    The nearest point of a face to a point of the half-voxel lattice is itself on that lattice (clamping a
    half-integer coordinate to a face's half-integer extent keeps it half-integer), so the distance from a face
    centre to the nearest of these points is its exact distance to the surface.
    """
    ndim = elements.half_index.shape[1]
    points = []
    for axis in range(ndim):
        index = elements.half_index[elements.normals == axis]
        in_plane = [a for a in range(ndim) if a != axis]
        for step in np.array(np.meshgrid(*[[-1, 0, 1]] * len(in_plane), indexing="ij")).reshape(len(in_plane), -1).T:
            moved = index.copy()
            moved[:, in_plane] += step
            points.append(moved)
    points = np.concatenate(points)
    # Shared edges and corners repeat; dropping repeats (by a 1-D key, faster than unique rows) shrinks the tree.
    low = points.min(0)
    extent = points.max(0) - low + 1
    keys = np.sort(np.ravel_multi_index(tuple((points - low).T), tuple(extent)))
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # np.unique is many times slower here
    unique = np.stack(np.unravel_index(keys, tuple(extent)), 1) + low
    return unique * (np.asarray(spacing, float) / 2)


def directed_distances(source: SurfaceElements, target: SurfaceElements,
                       spacing: tuple[float, ...]) -> np.ndarray:
    """For each element centre of ``source`` the exact distance in mm to the nearest point of ``target``'s
    surface (the union of its faces), so that coinciding surfaces are 0 apart."""
    distances, _ = cKDTree(lattice_points(target, spacing)).query(source.centres_mm)
    return np.asarray(distances, float)


def weighted_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """The smallest distance within which at least ``percent`` % of the total area lies."""
    order = np.argsort(distances, kind="stable")
    cumulative = np.cumsum(areas[order])
    position = int(np.searchsorted(cumulative, cumulative[-1] * percent / 100.0 * (1 - _ROUNDING)))
    return float(distances[order][min(position, len(order) - 1)])


def surface_scores(reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float, float],
                   tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
                   valid: np.ndarray | None = None) -> SurfaceScores:
    """HD95 and NSD between two boolean ``(z, y, x)`` masks with voxel ``spacing`` (z, y, x) in mm.

    ``valid`` (None for all) marks the voxels that count; masks are taken only where it is True and faces that
    touch a voxel where it is False are no surface.

    Example:
        >>> a = np.zeros((1, 9, 9), bool); a[0, 2:7, 2:7] = True
        >>> surface_scores(a, a, (999.0, 1.0, 1.0))
        SurfaceScores(hd95_mm=0.0, nsd=1.0)
    """
    reference, prediction = np.asarray(reference, bool), np.asarray(prediction, bool)
    if valid is not None:
        valid = np.asarray(valid, bool)
        reference, prediction = reference & valid, prediction & valid
    has_ref, has_pred = bool(reference.any()), bool(prediction.any())
    if not has_ref and not has_pred:
        return SurfaceScores(math.nan, math.nan)
    if not has_ref or not has_pred:
        return SurfaceScores(math.nan, 0.0)
    spacing = tuple(float(s) for s in spacing)
    if reference.shape[0] == 1:  # one slice: measure in-plane, the through-plane spacing is meaningless
        reference, prediction, spacing = reference[0], prediction[0], spacing[1:]
        valid = None if valid is None else valid[0]
    box = _crop_box(reference | prediction)
    reference, prediction = reference[box], prediction[box]
    valid = None if valid is None else valid[box]
    ref_surface = surface_elements(reference, spacing, valid)
    pred_surface = surface_elements(prediction, spacing, valid)
    if not len(ref_surface.areas_mm2) and not len(pred_surface.areas_mm2):
        return SurfaceScores(math.nan, math.nan)
    if not len(ref_surface.areas_mm2) or not len(pred_surface.areas_mm2):
        return SurfaceScores(math.nan, 0.0)
    pred_to_ref = directed_distances(pred_surface, ref_surface, spacing)
    ref_to_pred = directed_distances(ref_surface, pred_surface, spacing)
    hd95 = max(weighted_percentile(pred_to_ref, pred_surface.areas_mm2, 95),
               weighted_percentile(ref_to_pred, ref_surface.areas_mm2, 95))
    limit = tolerance_mm * (1 + _ROUNDING)
    within = (pred_surface.areas_mm2[pred_to_ref <= limit].sum() + ref_surface.areas_mm2[ref_to_pred <= limit].sum())
    nsd = float(within / (pred_surface.areas_mm2.sum() + ref_surface.areas_mm2.sum()))
    return SurfaceScores(hd95, nsd)
