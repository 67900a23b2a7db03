"""The report's plots, drawn with matplotlib's object API (no pyplot state, no display) and returned as
base64 PNG ``data:`` URIs."""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import numpy as np

DPI = 80
CLASS_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
                 "#9a6324", "#800000")


def class_colour(index: int) -> str:
    """A distinct colour for the ``index``-th foreground class (the same in every figure)."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def new_figure(width: float, height: float):
    """A matplotlib Figure that is not registered with pyplot (so nothing leaks between reports)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def to_data_uri(figure) -> str:
    """The figure as a PNG ``data:`` URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def distributions(spacings: np.ndarray, shapes: np.ndarray, axes_names: Sequence[str]) -> str:
    """Histograms of the spacing (top row) and the cropped size (bottom row) per axis over all cases."""
    count = len(axes_names)
    figure = new_figure(3.2 * count, 4.6)
    grid = figure.subplots(2, count, squeeze=False)
    for column, name in enumerate(axes_names):
        for row, (values, unit) in enumerate(((spacings[:, column], "spacing (mm)"),
                                              (shapes[:, column], "size after crop (voxels)"))):
            axis = grid[row][column]
            axis.hist(values, bins=min(30, max(5, len(np.unique(values)))), color="#4363d8", alpha=0.85)
            axis.set_xlabel(f"{name} {unit}")
            if column == 0:
                axis.set_ylabel("cases")
    figure.tight_layout()
    return to_data_uri(figure)


def label_volumes(volumes: dict[str, list[float]], unit: str) -> str:
    """A box plot of each class's reference volume over the cases."""
    names = list(volumes)
    figure = new_figure(max(4.0, 1.3 * len(names) + 2), 3.2)
    axis = figure.subplots()
    parts = axis.boxplot([volumes[n] for n in names], patch_artist=True, showfliers=True)
    axis.set_xticks(range(1, len(names) + 1), names)
    for index, box in enumerate(parts["boxes"]):
        box.set_facecolor(class_colour(index))
        box.set_alpha(0.5)
    axis.set_ylabel(f"reference volume ({unit})")
    figure.tight_layout()
    return to_data_uri(figure)


def training_curves(log: dict[str, list[float]], class_names: Sequence[str], title: str) -> str:
    """Losses (left axis) and pseudo-Dice per class and its moving average (right axis) per epoch."""
    epochs = log["epoch"]
    figure = new_figure(6.4, 3.6)
    axis = figure.subplots()
    axis.plot(epochs, log["train_loss"], color="#1f3c88", label="train loss")
    axis.plot(epochs, log["val_loss"], color="#c0392b", label="validation loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    dice = axis.twinx()
    for index, name in enumerate(class_names):
        values = log.get(f"dice_{name}")
        if values is not None:
            dice.plot(epochs, values, ":", color=class_colour(index), label=f"pseudo-Dice {name}")
    if "ema_pseudo_dice" in log:
        dice.plot(epochs, log["ema_pseudo_dice"], color="#2e8b57", linewidth=2, label="pseudo-Dice (moving avg.)")
    dice.set_ylim(0, 1)
    dice.set_ylabel("pseudo-Dice")
    lines = axis.get_legend_handles_labels(), dice.get_legend_handles_labels()
    figure.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="lower center", fontsize=8, ncol=3,
                  frameon=False)
    axis.set_title(title, fontsize=10)
    rows_of_legend = math.ceil((len(lines[0][0]) + len(lines[1][0])) / 3)
    figure.tight_layout(rect=(0, 0.07 * rows_of_legend, 1, 1))
    return to_data_uri(figure)


def dice_boxplot(dice: dict[str, dict[str, list[float]]]) -> str:
    """One box per configuration and class of the per-case Dice (NaN, a class absent from both, left out)."""
    labels, data, colours = [], [], []
    for configuration, per_class in dice.items():
        for index, (name, values) in enumerate(per_class.items()):
            finite = [v for v in values if not math.isnan(v)]
            labels.append(f"{configuration}\n{name}" + ("" if finite else "\n(no case)"))
            data.append(finite)
            colours.append(class_colour(index))
    figure = new_figure(max(4.0, 1.2 * len(labels) + 2), 3.6)
    axis = figure.subplots()
    parts = axis.boxplot(data, patch_artist=True)
    axis.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    for box, colour in zip(parts["boxes"], colours):
        box.set_facecolor(colour)
        box.set_alpha(0.5)
    axis.set_ylim(-0.02, 1.02)
    axis.set_ylabel("Dice per case")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return to_data_uri(figure)
