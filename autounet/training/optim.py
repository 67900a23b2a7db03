"""Optimiser and learning-rate schedule: SGD with Nesterov momentum (or AdamW) and polynomial decay per epoch."""

from __future__ import annotations

import torch

from autounet.training.config import TrainingConfig


OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """The config's optimiser: SGD (momentum, Nesterov) or AdamW, with its learning rate and weight decay."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay)


def poly_lr(initial: float, epoch: int, total_epochs: int, exponent: float) -> float:
    """Polynomial decay: ``initial * (1 - epoch / total_epochs) ** exponent``.

    Example:
        >>> poly_lr(0.01, 0, 1000, 0.9), round(poly_lr(0.01, 500, 1000, 0.9), 6)
        (0.01, 0.005359)
    """
    return initial * (1 - min(epoch, total_epochs) / total_epochs) ** exponent


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
