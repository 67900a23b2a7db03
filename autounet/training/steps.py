"""One training step and one validation step on a batch; the model, loss and optimiser are given."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from autounet.errors import UserError
from autounet.training.batches import Batch
from autounet.training.device_augment import DeviceAugmentation
from autounet.network.cpu_speed import channels_last_format
from autounet.network.loss import DeepSupervisionLoss, downsample_labels
from autounet.network.step import optimisation_step
from autounet.training.pseudo_dice import patch_counts


class OutOfGpuMemory(UserError):
    """The GPU ran out of memory during training."""


@contextlib.contextmanager
def explain_oom():
    """Turn a CUDA out-of-memory error into one sentence with the fix."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfGpuMemory("the GPU ran out of memory while training; re-plan for less memory, e.g. `autounet "
                             "plan DATASET --gpu-memory 8` (a smaller value than this GPU has), then "
                             "preprocess and train again.") from error


@dataclass
class StepParts:
    """What a step needs: the network (possibly DDP/compiled), its loss, optimiser, AMP scaler and settings."""

    model: torch.nn.Module
    loss: DeepSupervisionLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    device: torch.device
    output_scales: list[list[float]]
    grad_clip: float
    channels_last: bool = False
    augmentation: DeviceAugmentation | None = None
    """Augments the training batches that come unaugmented (``augment_on`` gpu)."""

    def inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(batch.images).to(self.device, non_blocking=True)
        # int16 over the bus (device augmentation reads patches several times the patch), int64 on arrival
        labels = torch.from_numpy(batch.labels).to(self.device, non_blocking=True).long()
        if batch.augment_seed is not None:
            if self.augmentation is None:
                raise ValueError("a batch left to device augmentation reached a step without one")
            images, labels = self.augmentation(images, labels, batch.augment_seed)
        if self.channels_last:
            images = images.contiguous(memory_format=channels_last_format(images.ndim))
        return images, labels

    def autocast(self):
        if self.scaler is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.float16)


def train_step(parts: StepParts, batch: Batch) -> float:
    """Forward, loss over all deep-supervision outputs, backward, clip, step; returns the loss."""
    images, labels = parts.inputs(batch)
    targets = downsample_labels(labels, parts.output_scales)
    with explain_oom():
        loss = optimisation_step(parts.model, parts.loss, images, targets, parts.optimizer, parts.grad_clip,
                                 parts.scaler, parts.autocast())
    return float(loss.detach())


@torch.no_grad()
def validation_step(parts: StepParts, network: torch.nn.Module, batch: Batch) -> tuple[float, torch.Tensor]:
    """Loss and (tp, fp, fn) counts per class of the full-resolution output on a validation batch."""
    images, labels = parts.inputs(batch)
    with explain_oom(), parts.autocast():
        logits = network(images)
        if isinstance(logits, list):
            logits = logits[0]
        loss = parts.loss(logits, [labels])
    return float(loss), patch_counts(logits.float(), labels, parts.loss.settings).cpu()
