"""Optional experiment tracking: each epoch's metrics also go to TensorBoard or MLflow when asked for.

Neither is a dependency: the package is imported only when ``--tracker`` names it, and a missing one is a one-
sentence error saying what to install (``pip install 'autounet[tracking]'`` brings both).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from autounet.errors import UserError
from autounet.training.checkpoint import EpochRecord

TRACKERS = ("none", "tensorboard", "mlflow")
TENSORBOARD_FOLDER = "tensorboard"


def epoch_metrics(record: EpochRecord, class_names: list[str]) -> dict[str, float]:
    """The numbers a tracker records for one epoch, by name.

    Example:
        >>> record = EpochRecord(0, 0.9, 0.8, [0.5, 0.25], 0.4, 0.01, 12.0, 0.1)
        >>> sorted(epoch_metrics(record, ["a", "b"]))[:3]
        ['data_wait_share', 'ema_pseudo_dice', 'learning_rate']
    """
    metrics = {"train_loss": record.train_loss, "val_loss": record.val_loss, "ema_pseudo_dice": record.ema_pseudo_dice,
               "learning_rate": record.learning_rate, "epoch_seconds": record.seconds,
               "data_wait_share": record.data_wait_share}
    metrics.update({f"pseudo_dice/{name}": value for name, value in zip(class_names, record.pseudo_dice)})
    return metrics


def _module(name: str, package: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise UserError(f"--tracker {package} needs the {package} package, which is not installed here: "
                        f"pip install {package} (or pip install 'autounet[tracking]').") from error


class Tracker:
    """Records nothing (``--tracker none``); the base of the real ones."""

    def log_epoch(self, record: EpochRecord, class_names: list[str]) -> None:
        """Record one finished epoch."""

    def close(self) -> None:
        """Flush and end the tracked run."""


class TensorBoardTracker(Tracker):
    """Scalars per epoch in ``fold_K/tensorboard/`` (``tensorboard --logdir results/``)."""

    def __init__(self, fold_dir: Path, config: dict):
        _module("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(fold_dir / TENSORBOARD_FOLDER))
        self.writer.add_text("training_config", f"```\n{json.dumps(config, indent=2, sort_keys=True)}\n```")

    def log_epoch(self, record: EpochRecord, class_names: list[str]) -> None:
        for name, value in epoch_metrics(record, class_names).items():
            self.writer.add_scalar(name, value, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """One MLflow run per fold (the tracking URI and experiment come from MLflow's own settings)."""

    def __init__(self, fold_dir: Path, config: dict):
        self.mlflow = _module("mlflow", "mlflow")
        self.mlflow.start_run(run_name=f"{fold_dir.parent.parent.name}/{fold_dir.parent.name}/{fold_dir.name}")
        flat = {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in config.items()}
        self.mlflow.log_params({key: str(value)[:250] for key, value in flat.items()})

    def log_epoch(self, record: EpochRecord, class_names: list[str]) -> None:
        safe = {name.replace("/", "_"): value for name, value in epoch_metrics(record, class_names).items()
                if value == value}  # MLflow refuses NaN
        self.mlflow.log_metrics(safe, step=record.epoch)

    def close(self) -> None:
        self.mlflow.end_run()


def open_tracker(kind: str, fold_dir: Path, config: dict) -> Tracker:
    """The tracker ``kind`` names (one of :data:`TRACKERS`) for the fold at ``fold_dir``."""
    if kind == "tensorboard":
        return TensorBoardTracker(fold_dir, config)
    if kind == "mlflow":
        return MLflowTracker(fold_dir, config)
    if kind == "none":
        return Tracker()
    raise UserError(f"--tracker must be one of {', '.join(TRACKERS)}, not '{kind}'.")
