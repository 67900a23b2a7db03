"""Training: cross-validated U-Net training from the cached cases, resumable, on one or many processes.

``from autounet.training import train_fold, TrainingConfig``. Importing this
package is cheap (torch loads only when training starts), which keeps the data
worker processes light.
"""

from autounet.training.config import SCHEDULE_PRESETS, TrainingConfig

__all__ = ["SCHEDULE_PRESETS", "TrainingConfig", "train_fold"]


def __getattr__(name: str):
    if name == "train_fold":
        from autounet.training.api import train_fold

        return train_fold
    raise AttributeError(name)
