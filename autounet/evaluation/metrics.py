"""Overlap metrics of one case: per class (a label value) or per region (a union of label values).

Rules (documented in docs/evaluate.md):

- A class absent from both reference and prediction has Dice, IoU, HD95 and NSD = NaN; NaN values are left
  out of every mean (as nnU-Net does) and counted instead.
- A class present on one side only has Dice = IoU = 0, NSD = 0 and HD95 = NaN (counted as undefined).
- Voxels whose reference value is the ignore label are left out of every count; for HD95 and NSD, voxel faces
  that touch such a voxel are no surface (see autounet/evaluation/surface.py).
- Volumes are voxel counts times the voxel volume in mm^3; for 2D images (no through-plane spacing) the
  pixel area in mm^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autounet.evaluation.surface import DEFAULT_NSD_TOLERANCE_MM, surface_scores

ClassSpec = dict[str, list[int]]
"""Class or region name -> the label values it is the union of (one value for a plain class)."""


@dataclass
class ClassMetrics:
    """The scores of one class (or region) in one case. NaN marks a score that is undefined (see module doc)."""

    dice: float
    iou: float
    tp: int
    fp: int
    fn: int
    tn: int
    reference_voxels: int
    predicted_voxels: int
    reference_volume_mm3: float
    predicted_volume_mm3: float
    hd95_mm: float = math.nan
    nsd: float = math.nan


def normalise_classes(labels_or_regions: dict[str, int | list[int]]) -> ClassSpec:
    """Every entry as a sorted list of values, e.g. ``{"a": 1, "ab": [1, 2]} -> {"a": [1], "ab": [1, 2]}``."""
    return {name: sorted({int(v) for v in (values if isinstance(values, list) else [values])})
            for name, values in labels_or_regions.items()}


def voxel_volume_mm3(spacing: tuple[float, float, float], is_2d: bool) -> float:
    """Volume of one voxel in mm^3 (the pixel area in mm^2 for 2D images)."""
    return float(np.prod(spacing[1:] if is_2d else spacing))


def dice_and_iou(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """Dice = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN); both NaN when TP + FP + FN = 0."""
    if tp + fp + fn == 0:
        return math.nan, math.nan
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)


def mask_metrics(reference: np.ndarray, prediction: np.ndarray, valid: np.ndarray | None,
                 spacing: tuple[float, float, float], is_2d: bool = False, surface: bool = False,
                 tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM) -> ClassMetrics:
    """The metrics of one boolean reference mask against one boolean prediction mask.

    ``valid`` (or None for all voxels) marks the voxels that count, i.e. not the ignore label.
    """
    if valid is not None:
        reference, prediction = reference & valid, prediction & valid
        n_valid = int(np.count_nonzero(valid))
    else:
        n_valid = reference.size
    n_ref, n_pred = int(np.count_nonzero(reference)), int(np.count_nonzero(prediction))
    tp = int(np.count_nonzero(reference & prediction))
    fp, fn = n_pred - tp, n_ref - tp
    dice, iou = dice_and_iou(tp, fp, fn)
    voxel = voxel_volume_mm3(spacing, is_2d)
    metrics = ClassMetrics(dice, iou, tp, fp, fn, n_valid - tp - fp - fn, n_ref, n_pred, n_ref * voxel,
                           n_pred * voxel)
    if surface:
        scores = surface_scores(reference, prediction, spacing, tolerance_mm, valid)
        metrics.hd95_mm, metrics.nsd = scores.hd95_mm, scores.nsd
    return metrics


def case_metrics(reference: np.ndarray, prediction: np.ndarray, classes: ClassSpec,
                 spacing: tuple[float, float, float], is_2d: bool = False, surface: bool = False,
                 tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
                 ignore_label: int | None = None) -> dict[str, ClassMetrics]:
    """Metrics per class or region of one case's label maps (same shape, ``(z, y, x)``).

    Example:
        >>> ref = np.array([[[0, 1, 1, 2]]]); pred = np.array([[[0, 1, 0, 2]]])
        >>> round(case_metrics(ref, pred, {"a": [1], "b": [2]}, (1.0, 1.0, 1.0))["a"].dice, 3)
        0.667
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, prediction {prediction.shape}")
    valid = reference != ignore_label if ignore_label is not None else None
    return {name: mask_metrics(np.isin(reference, values), np.isin(prediction, values), valid, spacing, is_2d,
                               surface, tolerance_mm)
            for name, values in classes.items()}


def empty_class_metrics(n_voxels: int) -> ClassMetrics:
    """The metrics of a class absent from both reference and prediction of a case with ``n_voxels`` voxels."""
    return ClassMetrics(math.nan, math.nan, 0, 0, 0, n_voxels, 0, 0, 0.0, 0.0)


def classes_from_spec(spec) -> ClassSpec:
    """The classes (or regions) of a :class:`~autounet.dataset.DatasetSpec` that are scored: all but background
    and ignore.

    Example:
        >>> classes_from_spec(load_spec(Path("Dataset004_Hippocampus")))  # doctest: +SKIP
        {'anterior': [1], 'posterior': [2]}
    """
    return normalise_classes({name: values for name, values in spec.labels.items()
                              if name not in ("background", "ignore")})
