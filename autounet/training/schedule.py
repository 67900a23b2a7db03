"""The schedule a trainer is given: how many epochs and iterations, when to stop, and the learning rate.

:class:`PresetSchedule` is fixed (a preset, or ``--epochs``); :class:`~autounet.training.time_schedule.TimeSchedule`
follows a time budget's clock. The trainer asks both the same questions, so its loop has no branch on the kind.
"""

from __future__ import annotations

from typing import Protocol

import torch

from autounet.training.config import TrainingConfig
from autounet.training.optim import poly_lr
from autounet.training.setup import FoldSetup
from autounet.training.time_schedule import start_time_schedule


class TrainingSchedule(Protocol):
    """What the trainer asks of a schedule while it trains."""

    @property
    def epochs(self) -> int:
        """The epoch total in force now (a time budget may shorten or, early on, extend it)."""

    @property
    def iterations_per_epoch(self) -> int: ...

    @property
    def val_iterations(self) -> int: ...

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under the epoch total in force now."""

    def epoch_started(self) -> None: ...

    def keep_training(self, iteration: int) -> bool:
        """After training iteration ``iteration`` (1-based) of an epoch: False when the epoch must stop now."""

    def epoch_ended(self, completed: bool) -> None:
        """After an epoch (``completed`` False when :meth:`keep_training` stopped it): re-fit the epoch total."""

    def recorded(self, config: TrainingConfig) -> TrainingConfig:
        """``config`` as training_config.json records it now (with the schedule's current totals)."""


class PresetSchedule:
    """A fixed schedule: the config's epochs x iterations and polynomial learning-rate decay; never stops early."""

    def __init__(self, config: TrainingConfig):
        self._config = config

    @property
    def epochs(self) -> int:
        return self._config.epochs

    @property
    def iterations_per_epoch(self) -> int:
        return self._config.iterations_per_epoch

    @property
    def val_iterations(self) -> int:
        return self._config.val_iterations

    def learning_rate(self, epoch: int) -> float:
        return poly_lr(self._config.learning_rate, epoch, self.epochs, self._config.poly_exponent)

    def epoch_started(self) -> None:
        pass

    def keep_training(self, iteration: int) -> bool:
        return True

    def epoch_ended(self, completed: bool) -> None:
        pass

    def recorded(self, config: TrainingConfig) -> TrainingConfig:
        return config


def schedule_for(setup: FoldSetup, config: TrainingConfig, device: torch.device, resumed: bool,
                 started: float) -> tuple[TrainingConfig, TrainingSchedule]:
    """The config a run trains with and its schedule: a time budget's, measured and fitted now for a fresh run
    (its clock counting from ``started``), else the config's own. A resumed time-budget run continues the schedule
    its training_config.json recorded, as a fixed one."""
    if config.time_budget_seconds is None or resumed:
        return config, PresetSchedule(config)
    return start_time_schedule(setup, config, device, started)
