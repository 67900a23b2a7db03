"""One optimisation step of a U-Net: forward, deep-supervision loss, backward, gradient clipping, optimiser step.

Training runs it on real batches; the memory model traces it on the meta device and the machine's timer runs it
on a batch of zeros, so the step planning sizes and times is the one that trains.
"""

from __future__ import annotations

import contextlib

import torch

from autounet.network.config import NetworkConfig
from autounet.network.loss import DeepSupervisionLoss, LossSettings, downsample_labels


def loss_for(network: NetworkConfig) -> DeepSupervisionLoss:
    """The training loss of ``network`` for plain classes (no regions, no ignore label): what planning sizes."""
    return DeepSupervisionLoss(LossSettings(network.num_classes), len(network.output_scales()))


def zero_batch(network: NetworkConfig, patch_size: list[int], batch_size: int, dtype: torch.dtype,
               device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Images of zeros and background label maps at every output scale, shaped as training batches are."""
    images = torch.zeros([batch_size, network.in_channels, *patch_size], dtype=dtype, device=device)
    labels = torch.zeros([batch_size, 1, *patch_size], dtype=torch.long, device=device)
    scales = network.output_scales() if network.deep_supervision else network.output_scales()[:1]
    return images, downsample_labels(labels, scales)


def forward_backward(model: torch.nn.Module, loss: DeepSupervisionLoss, images: torch.Tensor,
                     targets: list[torch.Tensor], autocast=None, backward=None) -> torch.Tensor:
    """Forward pass and loss (under ``autocast`` when given), then ``backward(loss)`` (default ``loss.backward()``)."""
    with autocast if autocast is not None else contextlib.nullcontext():
        value = loss(model(images), targets)
    if backward is None:
        value.backward()
    else:
        backward(value)
    return value


def optimisation_step(model: torch.nn.Module, loss: DeepSupervisionLoss, images: torch.Tensor,
                      targets: list[torch.Tensor], optimizer: torch.optim.Optimizer, grad_clip: float,
                      scaler: torch.amp.GradScaler | None = None, autocast=None) -> torch.Tensor:
    """:func:`forward_backward`, gradient norm clipped to ``grad_clip``, optimiser step (through ``scaler`` for
    mixed precision); returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        value = forward_backward(model, loss, images, targets, autocast)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return value
    value = forward_backward(model, loss, images, targets, autocast, lambda v: scaler.scale(v).backward())
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return value
