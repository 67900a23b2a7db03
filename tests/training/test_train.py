"""Training end to end on tiny synthetic data: overfitting, checkpoints, resume, extension, DDP, the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from autounet.cli.main import app
from autounet.errors import UserError
from autounet.paths import DataRoot, locate_dataset
from autounet.training import TrainingConfig, train_fold
from autounet.training import distributed
from autounet.training.checkpoint import load_weights
from tests.training.helpers import DATASET, ddp_rank_main, make_pipeline_root, make_training_root

REPO = Path(__file__).resolve().parents[2]
TINY = dict(epochs=2, iterations_per_epoch=3, val_iterations=1, num_workers=0, device="cpu")


def _log(fold_dir: Path) -> list[dict]:
    with open(fold_dir / "log.csv") as f:
        return list(csv.DictReader(f))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_tiny_network_overfits_one_case(tmp_path):
    location = make_training_root(tmp_path, n_cases=1, shape=(8, 16, 16), patch=(8, 16, 16), batch_size=2,
                                  features=(8, 16))
    config = TrainingConfig(epochs=6, iterations_per_epoch=8, val_iterations=1, num_workers=0, device="cpu",
                            augment=False)
    fold_dir = train_fold(location, "3d_fullres", "all", config)
    log = _log(fold_dir)
    first, last = log[0], log[-1]
    assert float(last["train_loss"]) < 0.3 * float(first["train_loss"])
    assert float(last["dice_a"]) > max(0.7, float(first["dice_a"]))
    assert float(last["dice_b"]) > max(0.7, float(first["dice_b"]))


def test_results_folder_is_self_contained(tmp_path):
    location = make_training_root(tmp_path)
    fold_dir = train_fold(location, "3d_fullres", 1, TrainingConfig(**TINY))
    names = {p.name for p in fold_dir.iterdir()}
    assert {"plans.json", "dataset.json", "training_config.json", "model_latest.safetensors",
            "model_best.safetensors", "model_final.safetensors", "state_latest.json", "state_latest.safetensors",
            "log.csv", "progress.png"} <= names
    stored = json.loads((fold_dir / "training_config.json").read_text())
    assert stored["configuration"] == "3d_fullres" and stored["fold"] == 1 and stored["epochs"] == 2
    weights = load_file(str(fold_dir / "model_final.safetensors"))
    assert all(not k.startswith(("model.", "optimizer.")) for k in weights)
    splits = json.loads((location.preprocessed / "splits.json").read_text())
    assert len(splits) == 4 and sorted(sum((s["val"] for s in splits), [])) == [f"case_{i:03d}" for i in range(4)]
    assert len(_log(fold_dir)) == 2


def test_extend_after_finish_and_refusals(tmp_path):
    location = make_training_root(tmp_path)
    fold_dir = train_fold(location, "3d_fullres", 0, TrainingConfig(**TINY))
    with pytest.raises(UserError, match="finished run of 2 epochs"):
        train_fold(location, "3d_fullres", 0, TrainingConfig(**TINY))
    train_fold(location, "3d_fullres", 0, TrainingConfig(**{**TINY, "epochs": 3}), resume=True)
    train_fold(location, "3d_fullres", 0, TrainingConfig(**{**TINY, "epochs": 4}))  # --epochs alone extends too
    state = json.loads((fold_dir / "state_latest.json").read_text())["state"]
    assert state["epochs_done"] == 4 and len(_log(fold_dir)) == 4
    # The plan changed under the run: refuse to continue it.
    plans = json.loads((location.preprocessed / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [4, 8, 8]
    (location.preprocessed / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(UserError, match="patch_size changed"):
        train_fold(location, "3d_fullres", 0, TrainingConfig(**{**TINY, "epochs": 5}), resume=True)
    with pytest.raises(UserError, match="fold 9 does not exist"):
        train_fold(location, "3d_fullres", 9, TrainingConfig(**TINY))


def test_pickle_checkpoints_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="refused"):
        load_weights(tmp_path / "evil.pth")
    (tmp_path / "evil.safetensors").write_bytes((tmp_path / "evil.pth").read_bytes())
    with pytest.raises(UserError, match="not a valid safetensors"):
        load_weights(tmp_path / "evil.safetensors")
    torch.save({"weight": torch.ones(2)}, tmp_path / "plain.pth")
    assert torch.equal(load_weights(tmp_path / "plain.pth")["weight"], torch.ones(2))


def _train_command(root: Path, epochs: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autounet", "train", DATASET, "--fold", "0", "--epochs", str(epochs),
            "--iterations-per-epoch", "4", "--val-iterations", "1", "--workers", "0", "--device", "cpu",
            "--root", str(root), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_killed_run_resumes_to_identical_weights(tmp_path, optimizer):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    roots = [tmp_path / "straight", tmp_path / "killed"]
    for root in roots:
        make_training_root(root)
    # The uninterrupted run in this process: same data, seed and thread count as the subprocesses.
    straight_dir = train_fold(locate_dataset(DATASET, DataRoot.under(roots[0])), "3d_fullres", 0,
                              TrainingConfig.from_budget("standard", epochs=3, iterations_per_epoch=4,
                                                         val_iterations=1, num_workers=0, device="cpu",
                                                         optimizer=optimizer))
    fold_dir = roots[1] / "results" / DATASET / "3d_fullres" / "fold_0"
    process = subprocess.Popen(_train_command(roots[1], 3, "--optimizer", optimizer), cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (fold_dir / "state_latest.json").is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((fold_dir / "state_latest.json").read_text())["state"]
    assert state["epochs_done"] < 3, "the run finished before it could be killed"
    resumed = subprocess.run(_train_command(roots[1], 3, "--resume", "--optimizer", optimizer), cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _same_weights(straight_dir / "model_final.safetensors", fold_dir / "model_final.safetensors")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_keeps_ranks_identical(tmp_path):
    location = make_training_root(tmp_path, n_cases=4, batch_size=4)
    config = TrainingConfig(**{**TINY, "gpus": 2}).with_overrides(configuration="3d_fullres", fold=0)
    torch.multiprocessing.spawn(ddp_rank_main, args=(location, config, distributed.free_port(), tmp_path),
                                nprocs=2, join=True)
    assert _same_weights(tmp_path / "rank_0.safetensors", tmp_path / "rank_1.safetensors")
    fold_dir = location.results / "3d_fullres" / "fold_0"
    assert _same_weights(tmp_path / "rank_0.safetensors", fold_dir / "model_final.safetensors")
    assert len(_log(fold_dir)) == 2
    # The same through the public API (--gpus 2 spawns the processes itself).
    assert train_fold(location, "3d_fullres", 1, config) == location.results / "3d_fullres" / "fold_1"
    assert (location.results / "3d_fullres" / "fold_1" / "model_final.safetensors").is_file()


def test_cli_trains_validates_and_explains_bad_input(tmp_path):
    root = tmp_path / "root"
    runner = CliRunner()
    missing = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--root", str(root)])
    assert missing.exit_code == 1
    location = make_pipeline_root(root)
    args = ["train", location.name, "--root", str(root), "--epochs", "1", "--iterations-per-epoch", "2",
            "--val-iterations", "1", "--workers", "0", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--fold", "0,1", "--save-probabilities", "--tracker", "tensorboard"])
    assert result.exit_code == 0, result.output
    assert list((location.results / "3d_fullres" / "fold_1" / "tensorboard").glob("events.out.tfevents.*"))
    splits = json.loads((location.preprocessed / "splits.json").read_text())
    for fold in (0, 1):
        validation = location.results / "3d_fullres" / f"fold_{fold}" / "validation"
        assert sorted(p.name for p in validation.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in splits[fold]["val"]]
        assert sorted(p.stem for p in validation.glob("*.npz")) == splits[fold]["val"]
        summary = json.loads((validation / "summary.json").read_text())
        assert len(summary["cases"]) == len(splits[fold]["val"])
        # The fold's log: versions and machine, the resolved config, every epoch line, the final scores.
        log = (validation.parent / "training.log").read_text()
        assert "autounet " in log and "torch " in log and "CPU cores" in log
        assert '"iterations_per_epoch": 2' in log and "resolved training config" in log
        assert "epoch 1/1: train loss" in log
        assert f"validation: mean foreground Dice {summary['foreground_mean']['dice']:.4f}" in log
    assert runner.invoke(app, [*args, "--fold", "7"]).exit_code == 1
    result = runner.invoke(app, [*args, "--fold", "0"])
    assert result.exit_code == 1 and "finished run" in result.output
    # The error that ended the command is in the fold's log with its traceback; the terminal had one sentence.
    log = (location.results / "3d_fullres" / "fold_0" / "training.log").read_text()
    assert "finished run" in log and "Traceback (most recent call last)" in log
    assert "Traceback" not in result.output
    os.remove(location.preprocessed / "plans.json")
    result = runner.invoke(app, [*args, "--fold", "2", "-c", "3d_fullres"])
    assert result.exit_code == 1 and "autounet plan" in result.output


def test_two_dimensional_configurations_and_ignore_label(tmp_path):
    # A 2d configuration of a 3D dataset (slices of Z > 1 volumes), with an ignore label in the data.
    location = make_training_root(tmp_path / "a", shape=(6, 16, 16), conv_dim=2, patch=(16, 16), batch_size=3,
                                  labels={"background": 0, "a": 1, "b": 2, "ignore": 3})
    fold_dir = train_fold(location, "2d", 0, TrainingConfig(**TINY))
    assert fold_dir.name == "fold_0" and fold_dir.parent.name == "2d"
    assert all(r["train_loss"] != "nan" for r in _log(fold_dir))
    # A 2D dataset: Z = 1.
    location = make_training_root(tmp_path / "b", shape=(1, 24, 24), conv_dim=2, patch=(16, 16), batch_size=2)
    assert (train_fold(location, "2d", "all", TrainingConfig(**TINY)) / "model_final.safetensors").is_file()


@pytest.mark.slow
def test_region_based_training_learns_each_region(tmp_path):
    """Sigmoid outputs per region (whole = labels 1 and 2, core = label 2) on one case: both regions are learned
    (pseudo-Dice per region, from the region-wise counts), not only named in the log."""
    labels = {"background": 0, "whole": [1, 2], "core": 2}
    location = make_training_root(tmp_path, n_cases=1, shape=(8, 16, 16), patch=(8, 16, 16), labels=labels,
                                  features=(8, 16), extra_dataset_json={"regions_class_order": [1, 2]})
    # sigmoid outputs learn the smaller region more slowly than softmax ones: 12 epochs, not 6
    config = TrainingConfig(epochs=12, iterations_per_epoch=8, val_iterations=1, num_workers=0, device="cpu",
                            augment=False)
    log = _log(train_fold(location, "3d_fullres", "all", config))
    first, last = log[0], log[-1]
    assert float(last["train_loss"]) < 0.3 * float(first["train_loss"])
    assert float(last["dice_whole"]) > max(0.7, float(first["dice_whole"]))
    assert float(last["dice_core"]) > max(0.7, float(first["dice_core"]))


@pytest.mark.slow
def test_ignore_label_hides_voxels_from_training(tmp_path):
    """The top half of the case's labels is replaced by the ignore label: the network still learns the classes
    from the other half, and predicts them in the hidden half too (had the ignored voxels been trained as
    background, the hidden half of the ball would come out as background)."""
    import numpy as np

    from autounet.inference.predictor import Predictor
    from autounet.preprocessing.store import CaseStore

    location = make_training_root(tmp_path, n_cases=1, shape=(8, 16, 16), patch=(8, 16, 16), features=(8, 16),
                                  labels={"background": 0, "a": 1, "b": 2, "ignore": 3})
    store = CaseStore(location.preprocessed / "autounet_3d_fullres")
    case = store.load("case_000")
    truth = np.array(case.seg)
    hidden = truth.copy()
    hidden[:, :, :8, :] = 3  # the top half of every slice is unlabelled
    np.save(store.folder / "case_000_seg.npy", hidden)
    config = TrainingConfig(epochs=6, iterations_per_epoch=8, val_iterations=1, num_workers=0, device="cpu",
                            augment=False)
    fold_dir = train_fold(location, "3d_fullres", "all", config)
    log = _log(fold_dir)
    assert float(log[-1]["train_loss"]) < 0.3 * float(log[0]["train_loss"])
    assert float(log[-1]["dice_a"]) > 0.7 and float(log[-1]["dice_b"]) > 0.7 and "dice_ignore" not in log[-1]
    model = Predictor.from_model_folder(fold_dir, device="cpu", tta=False).models[0]
    predicted = model.probabilities_of_preprocessed(np.array(case.data)).argmax(0).numpy()
    top, expected = predicted[:, :8, :], truth[0, :, :8, :]
    for label in (1, 2):
        dice = 2 * np.sum((top == label) & (expected == label)) / (np.sum(top == label) + np.sum(expected == label))
        assert dice > 0.7, f"label {label} in the ignored half: Dice {dice:.2f}"


def test_a_second_run_of_the_same_fold_is_refused_while_the_first_holds_it(tmp_path):
    from autounet.errors import LockedError
    from autounet.utils.locks import exclusive

    location = make_training_root(tmp_path)
    fold_dir = location.results / "3d_fullres" / "fold_0"
    with exclusive(fold_dir, "autounet train (the first run)"):
        with pytest.raises(LockedError, match="the first run"):
            train_fold(location, "3d_fullres", 0, TrainingConfig(**TINY))
    assert not (fold_dir / "model_final.safetensors").exists()
    # once it is free (as when the first process ends, however it ends) the fold trains
    assert (train_fold(location, "3d_fullres", 0, TrainingConfig(**TINY)) / "model_final.safetensors").is_file()
