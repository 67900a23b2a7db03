"""Pseudo-Dice: Dice on validation patches during training, and its moving average that picks the best checkpoint."""

from __future__ import annotations

import torch

from autounet.network.loss import LossSettings, region_targets


def patch_counts(logits: torch.Tensor, labels: torch.Tensor, settings: LossSettings) -> torch.Tensor:
    """True positives, false positives and false negatives per foreground class or region: a (3, K) tensor.

    ``logits`` (B, C, ...) at full resolution, ``labels`` (B, 1, ...).
    """
    valid = None
    if settings.ignore_label is not None:
        valid = labels != settings.ignore_label
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    if settings.regions is not None:
        predicted = logits > 0
        target = region_targets(labels, settings.regions) > 0.5
    else:
        classes = torch.arange(1, settings.num_outputs, device=logits.device).view(1, -1, *[1] * (logits.ndim - 2))
        predicted = logits.argmax(1, keepdim=True) == classes
        target = labels == classes
    if valid is not None:
        predicted, target = predicted & valid, target & valid
    axes = [0, *range(2, logits.ndim)]
    tp = (predicted & target).sum(axes)
    fp = (predicted & ~target).sum(axes)
    fn = (~predicted & target).sum(axes)
    return torch.stack([tp, fp, fn]).double()


def dice_from_counts(counts: torch.Tensor) -> list[float]:
    """Dice per class from summed (3, K) counts; NaN for a class absent from both prediction and reference."""
    tp, fp, fn = counts
    denominator = 2 * tp + fp + fn
    return [float(2 * t / d) if d > 0 else float("nan") for t, d in zip(tp, denominator)]


def update_ema(previous: float | None, value: float, momentum: float) -> float:
    """Exponential moving average: ``momentum * previous + (1 - momentum) * value``; the first value as is.

    Example:
        >>> update_ema(None, 0.5, 0.9), round(update_ema(0.5, 1.0, 0.9), 3)
        (0.5, 0.55)
    """
    if previous is None or previous != previous:
        return value
    return momentum * previous + (1 - momentum) * value
