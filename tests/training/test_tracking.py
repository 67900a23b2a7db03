"""Optional experiment tracking: epoch metrics to TensorBoard (when installed), clear errors otherwise."""

from __future__ import annotations

import builtins
import math

import pytest

from autounet.errors import UserError
from autounet.training.checkpoint import EpochRecord
from autounet.training.tracking import Tracker, epoch_metrics, open_tracker

RECORDS = [EpochRecord(epoch, 1.0 / (epoch + 1), 0.9 - 0.1 * epoch, [0.2 * epoch, math.nan], 0.1 * epoch, 0.01,
                       3.0, 0.05) for epoch in range(3)]


def test_epoch_metrics_name_every_number_of_the_log():
    metrics = epoch_metrics(RECORDS[1], ["anterior", "posterior"])
    assert metrics["train_loss"] == 0.5 and metrics["pseudo_dice/anterior"] == 0.2
    assert math.isnan(metrics["pseudo_dice/posterior"]) and metrics["learning_rate"] == 0.01


def test_none_records_nothing_and_an_unknown_tracker_is_one_sentence(tmp_path):
    assert type(open_tracker("none", tmp_path, {})) is Tracker
    with pytest.raises(UserError, match="--tracker must be one of none, tensorboard, mlflow, not 'wandb'"):
        open_tracker("wandb", tmp_path, {})
    assert not any(tmp_path.iterdir())


def test_a_missing_package_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def without_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_mlflow)
    monkeypatch.delitem(__import__("sys").modules, "mlflow", raising=False)
    with pytest.raises(UserError, match=r"pip install mlflow \(or pip install 'autounet\[tracking\]'\)"):
        open_tracker("mlflow", tmp_path, {})


def test_tensorboard_gets_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = open_tracker("tensorboard", tmp_path, {"learning_rate": 0.01})
    for record in RECORDS:
        tracker.log_epoch(record, ["anterior", "posterior"])
    tracker.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = [(e.step, round(e.value, 4)) for e in events.Scalars("train_loss")]
    assert losses == [(0, 1.0), (1, 0.5), (2, 0.3333)]
    assert [round(e.value, 4) for e in events.Scalars("pseudo_dice/anterior")] == [0.0, 0.2, 0.4]
