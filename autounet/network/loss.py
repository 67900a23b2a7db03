"""The loss: soft Dice + cross-entropy (or + BCE per region), summed over deep-supervision outputs.

Targets arrive as integer label maps (B, 1, *spatial) per output scale. The
ignore label, when the dataset has one, is masked out of both terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def deep_supervision_weights(n_outputs: int, decay: float = 0.5) -> list[float]:
    """Weights falling by ``decay`` per scale from the highest resolution (halving by default), summing to 1.

    Example:
        >>> deep_supervision_weights(3)
        [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    raw = [decay ** i for i in range(n_outputs)]
    return [w / sum(raw) for w in raw]


def downsample_labels(labels: torch.Tensor, scales: list[list[float]]) -> list[torch.Tensor]:
    """The label map at each output scale (nearest neighbour), highest resolution first.

    ``scales`` are per-axis factors relative to the input, as
    :meth:`NetworkConfig.output_scales` gives them.
    """
    targets = []
    spatial = labels.shape[2:]
    for scale in scales:
        size = [max(1, int(round(n * s))) for n, s in zip(spatial, scale)]
        if list(size) == list(spatial):
            targets.append(labels)
        else:
            targets.append(F.interpolate(labels.float(), size=size, mode="nearest").to(labels.dtype))
    return targets


@dataclass
class LossSettings:
    """What the loss needs to know about the labels."""

    num_outputs: int
    regions: list[list[int]] | None = None
    """Label values of each region (region-based training), or None for plain classes."""
    ignore_label: int | None = None
    batch_dice: bool = False
    smooth: float = 1e-5
    cross_entropy_weight: float = 1.0
    """Weight of the cross-entropy (or BCE) term of each output."""
    dice_weight: float = 1.0
    """Weight of the soft Dice term (``1 - Dice``) of each output."""
    deep_supervision_decay: float = 0.5
    """Each lower-resolution output weighs this much of the one above it (weights normalised to sum to 1)."""


def region_targets(labels: torch.Tensor, regions: list[list[int]]) -> torch.Tensor:
    """(B, 1, ...) labels -> (B, R, ...) binary float masks, one per region."""
    return torch.cat([torch.isin(labels, torch.tensor(r, device=labels.device)) for r in regions], 1).float()


def soft_dice(probabilities: torch.Tensor, onehot: torch.Tensor, mask: torch.Tensor | None, batch_dice: bool,
              smooth: float) -> torch.Tensor:
    """Soft Dice per channel (mean over channels, and over samples unless ``batch_dice``); 1 is perfect."""
    if mask is not None:
        probabilities, onehot = probabilities * mask, onehot * mask
    axes = [0, *range(2, probabilities.ndim)] if batch_dice else list(range(2, probabilities.ndim))
    intersection = (probabilities * onehot).sum(axes)
    denominator = probabilities.sum(axes) + onehot.sum(axes)
    return ((2 * intersection + smooth) / (denominator + smooth).clamp_min(1e-8)).mean()


def single_scale_loss(logits: torch.Tensor, labels: torch.Tensor, settings: LossSettings) -> torch.Tensor:
    """Weighted CE + Dice (or BCE + Dice for regions) of one output; ``1 - Dice`` so a perfect output scores CE
    alone."""
    logits = logits.float()
    mask = None
    if settings.ignore_label is not None:
        mask = (labels != settings.ignore_label).float()
        labels = torch.where(labels == settings.ignore_label, torch.zeros_like(labels), labels)
    if settings.regions is not None:
        target = region_targets(labels, settings.regions)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if mask is not None:
            bce = (bce * mask).sum() / (mask.sum() * logits.shape[1]).clamp_min(1)
        else:
            bce = bce.mean()
        dice = soft_dice(torch.sigmoid(logits), target, mask, settings.batch_dice, settings.smooth)
        return settings.cross_entropy_weight * bce + settings.dice_weight * (1 - dice)
    index = labels[:, 0].long()
    ce = F.cross_entropy(logits, index, reduction="none")
    if mask is not None:
        ce = (ce * mask[:, 0]).sum() / mask.sum().clamp_min(1)
    else:
        ce = ce.mean()
    onehot = F.one_hot(index, settings.num_outputs).movedim(-1, 1).float()
    probabilities = torch.softmax(logits, 1)
    # Dice over the foreground classes only, as in nnU-Net.
    dice = soft_dice(probabilities[:, 1:], onehot[:, 1:], mask, settings.batch_dice, settings.smooth)
    return settings.cross_entropy_weight * ce + settings.dice_weight * (1 - dice)


class DeepSupervisionLoss(torch.nn.Module):
    """Weighted sum of :func:`single_scale_loss` over the outputs (highest resolution first)."""

    def __init__(self, settings: LossSettings, n_outputs: int):
        super().__init__()
        self.settings = settings
        self.weights = deep_supervision_weights(n_outputs, settings.deep_supervision_decay)

    def forward(self, outputs: list[torch.Tensor] | torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        weights = (self.weights if len(outputs) == len(self.weights)
                   else deep_supervision_weights(len(outputs), self.settings.deep_supervision_decay))
        return sum(w * single_scale_loss(o, t, self.settings) for w, o, t in zip(weights, outputs, targets))
