"""What a run reports: the per-epoch summary line, ``log.csv`` and the ``progress.png`` curves."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from autounet.training.checkpoint import EpochRecord
from autounet.utils.atomic import write_bytes

TRAINING_LOG = "training.log"
"""The fold's log: versions, machine, the resolved config, every line training printed, warnings, errors with their
traceback, and the final validation's scores."""


def summary_line(record: EpochRecord, class_names: list[str], total_epochs: int) -> str:
    """One line per epoch: losses, pseudo-Dice per class, its moving average, learning rate and time."""
    dice = " ".join(f"{name} {value:.3f}" for name, value in zip(class_names, record.pseudo_dice))
    return (f"epoch {record.epoch + 1}/{total_epochs}: train loss {record.train_loss:.4f}, val loss "
            f"{record.val_loss:.4f}, pseudo-Dice [{dice}] (EMA {record.ema_pseudo_dice:.3f}), lr "
            f"{record.learning_rate:.2e}, {record.seconds:.1f} s ({100 * record.data_wait_share:.0f}% waiting "
            f"for data)")


def write_log_csv(records: list[EpochRecord], class_names: list[str], path: Path) -> None:
    """The whole log as CSV, one row per epoch (rewritten atomically each epoch)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch", "train_loss", "val_loss", *[f"dice_{n}" for n in class_names], "ema_pseudo_dice",
                     "learning_rate", "seconds", "data_wait_share"])
    for r in records:
        writer.writerow([r.epoch + 1, f"{r.train_loss:.6f}", f"{r.val_loss:.6f}",
                         *[f"{d:.6f}" for d in r.pseudo_dice], f"{r.ema_pseudo_dice:.6f}",
                         f"{r.learning_rate:.6g}", f"{r.seconds:.2f}",
                         f"{r.data_wait_share:.4f}"])
    write_bytes(path, buffer.getvalue().encode("utf-8"))


def plot_progress(records: list[EpochRecord], class_names: list[str], path: Path) -> None:
    """Training curves: losses and pseudo-Dice (top), learning rate (middle), epoch time (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch + 1 for r in records]
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    top.plot(epochs, [r.train_loss for r in records], "b-", label="train loss")
    top.plot(epochs, [r.val_loss for r in records], "r-", label="val loss")
    top.set_ylabel("loss")
    dice_axis = top.twinx()
    for index, name in enumerate(class_names):
        values = [r.pseudo_dice[index] if index < len(r.pseudo_dice) else math.nan for r in records]
        dice_axis.plot(epochs, values, ":", label=f"pseudo-Dice {name}")
    dice_axis.plot(epochs, [r.ema_pseudo_dice for r in records], "g-", label="pseudo-Dice (EMA)")
    dice_axis.set_ylabel("pseudo-Dice")
    dice_axis.set_ylim(0, 1)
    top.legend(loc="upper left")
    dice_axis.legend(loc="upper right")
    middle.plot(epochs, [r.learning_rate for r in records], "k-")
    middle.set_ylabel("learning rate")
    bottom.plot(epochs, [r.seconds for r in records], "k-")
    bottom.set_ylabel("epoch time (s)")
    bottom.set_xlabel("epoch")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())
