"""Overlays of validation cases: reference and prediction contours over the image, on the slice with the most
foreground (three orthogonal slices for 3D images), the image windowed with the fingerprint's percentiles."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.report.collect import CaseRow
from autounet.report.figures import class_colour, new_figure, to_data_uri

VIEWS = (("axial", 0), ("coronal", 1), ("sagittal", 2))


@dataclass(frozen=True)
class Pick:
    """A case chosen to be shown, and why (best, median or worst by mean Dice)."""

    role: str
    row: CaseRow


def pick_cases(rows: Sequence[CaseRow]) -> list[Pick]:
    """The best, median and worst case by mean foreground Dice (fewer when there are fewer cases).

    Cases with no defined Dice (no foreground in reference nor prediction) are left out.
    """
    ranked = sorted((r for r in rows if not math.isnan(r.mean_dice)), key=lambda r: (-r.mean_dice, r.case))
    if not ranked:
        return []
    chosen = [("best", ranked[0]), ("median", ranked[(len(ranked) - 1) // 2]), ("worst", ranked[-1])]
    picks, seen = [], set()
    for role, row in chosen:
        if row.case not in seen:
            seen.add(row.case)
            picks.append(Pick(role, row))
    return picks


def most_foreground_slices(mask: np.ndarray) -> list[int]:
    """Per axis of a ``(z, y, x)`` mask, the index of the slice holding the most foreground (the middle one
    when the mask is empty)."""
    indices = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        counts = mask.sum(axis=others)
        indices.append(int(np.argmax(counts)) if counts.any() else mask.shape[axis] // 2)
    return indices


def take(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice ``index`` across ``axis`` of a ``(z, y, x)`` array (or ``(c, z, y, x)``, channels last)."""
    if volume.ndim == 4:
        return np.moveaxis(np.take(volume, index, axis=axis + 1), 0, -1)
    return np.take(volume, index, axis=axis)


def window(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Intensities mapped to 0..1 between ``low`` and ``high``."""
    if not high > low:
        high = low + 1.0
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def display_image(image: np.ndarray, windows: Sequence[tuple[float, float]], rgb: bool) -> np.ndarray:
    """A ``(z, y, x)`` grey volume (first channel) or, for RGB, ``(3, z, y, x)`` in 0..1."""
    if rgb:
        if image.min() >= 0 and image.max() <= 255:
            return image[:3] / 255.0  # 8-bit colour as it is, not stretched channel by channel
        return np.stack([window(image[c], *windows[c]) for c in range(3)])
    return window(image[0], *windows[0])


def render(image: np.ndarray, reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
           classes: dict[str, list[int]], title: str) -> str:
    """The overlay figure of one case as a data URI.

    ``image`` is ``(z, y, x)`` in 0..1 or ``(3, z, y, x)`` RGB; label maps are ``(z, y, x)``.
    """
    foreground_values = sorted({v for values in classes.values() for v in values})
    mask = np.isin(reference, foreground_values)
    if not mask.any():
        mask = np.isin(prediction, foreground_values)
    slices = most_foreground_slices(mask)
    views = VIEWS if reference.shape[0] > 1 else VIEWS[:1]
    figure = new_figure(3.6 * len(views), 3.9)
    axes = figure.subplots(1, len(views), squeeze=False)[0]
    for axis, (name, dim) in zip(axes, views):
        shown = [a for a in range(3) if a != dim]
        aspect = spacing[shown[0]] / spacing[shown[1]]
        picture = take(image, dim, slices[dim])
        axis.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1, aspect=aspect,
                    interpolation="nearest", origin="upper" if dim == 0 else "lower")
        for index, values in enumerate(classes.values()):
            for labels, style in ((reference, "solid"), (prediction, "dashed")):
                region = np.isin(take(labels, dim, slices[dim]), values)
                if region.any() and not region.all():
                    axis.contour(region.astype(np.float32), levels=[0.5], colors=[class_colour(index)],
                                 linestyles=style, linewidths=2.0 if style == "solid" else 1.3)
        label = name if reference.shape[0] > 1 else "slice"
        axis.set_title(f"{label} {slices[dim]}" if reference.shape[0] > 1 else "", fontsize=9)
        axis.set_axis_off()
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=class_colour(i), label=name) for i, name in enumerate(classes)]
    handles += [Line2D([], [], color="#555", linestyle="solid", label="reference"),
                Line2D([], [], color="#555", linestyle="dashed", label="prediction")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    return to_data_uri(figure)


def channel_files(raw: Path, case: str, channels: int, ending: str) -> list[Path]:
    """``imagesTr/CASE_0000<ending>`` ... of a case."""
    return [raw / "imagesTr" / f"{case}_{c:04d}{ending}" for c in range(channels)]
