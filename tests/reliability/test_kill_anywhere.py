"""Kill anywhere: each command killed with SIGKILL at random moments and rerun (``--resume`` for train, ``--continue``
for predict, the same command line otherwise) completes with the outputs of an uninterrupted run, and no file that
looks complete is ever half-written (see kill_harness.py for how the moments are drawn and the chains run).

Each test runs the real CLI in subprocesses on tiny synthetic data. ``AUTOUNET_KILLS=20`` kills every command 20
times (the CI default is fewer for the commands that take seconds per start; docs/reliability.md has the measured
times); ``AUTOUNET_KILL_SEED=N`` repeats the moments of a failure, whose message names its seed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from autounet.inference.model_folder import fold_folders, is_fold_folder, weights_file
from autounet.network.config import NetworkConfig
from autounet.preprocessing.store import CaseStore
from tests.conftest import make_nifti_dataset
from tests.inference.factory import configuration, make_fold, make_trained, plans_of
from tests.preprocessing.plans_factory import make_configuration, make_plans, prepare_dataset
from tests.reliability.kill_harness import (ChainFailure, ChainReport, Command, differences, half_written,
                                            kill_anywhere, kill_count, kill_seed, leftover_temporaries, snapshot)
from tests.training.helpers import DATASET as TRAIN_DATASET
from tests.training.helpers import make_training_root

pytestmark = pytest.mark.slow


def _reference(command: Command, argv: list[str]):
    outcome = command.run(argv)
    assert outcome.returncode == 0, outcome.output
    return outcome.seconds


def _no_temporaries(report: ChainReport, *folders: Path) -> None:
    left = leftover_temporaries(*folders)
    assert not left, (f"{report.describe()}: temporary files of killed writes were left behind: "
                      f"{[str(p) for p in left]}\n{report.timeline()}")


# ---------------------------------------------------------------------------------------------------------------
# preprocess


def test_preprocess_killed_anywhere_reruns_to_the_same_files(data_root, tmp_path):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=24, shape=(40, 44, 42))
    location = prepare_dataset(raw, data_root, make_plans(make_configuration(spacing=(0.5, 0.5, 0.5))))
    folder = location.preprocessed / "autounet_3d_fullres"
    argv = ["preprocess", "Dataset100", "--workers", "2"]
    command = Command(argv, argv, data_root, tmp_path / "logs")
    seconds = _reference(command, argv)
    # Every file is compared byte for byte: the arrays, the properties (which stamp the raw files: the same files
    # in both runs) and the folder's settings.
    reference = snapshot(folder)
    reference_json = (location.preprocessed / "dataset.json").read_bytes()

    def reset() -> None:
        shutil.rmtree(folder)
        (location.preprocessed / "dataset.json").unlink()

    def whole() -> list[str]:
        problems = half_written(location.preprocessed)
        store = CaseStore(folder)
        for case_id in store.case_ids():  # a case with its properties file is complete: it must open
            try:
                store.load(case_id, mmap=False)
            except Exception as error:  # noqa: BLE001
                problems.append(f"case {case_id} looks complete but does not load: {error}")
        return problems

    def complete() -> list[str]:
        found = differences(reference, snapshot(folder))
        if (location.preprocessed / "dataset.json").read_bytes() != reference_json:
            found.append("preprocessed dataset.json differs")
        return found

    seed = kill_seed()
    report = kill_anywhere(command, seconds, seed, kill_count(4), reset, whole, complete,
                           lambda: f"{len(CaseStore(folder).case_ids())} of 24 cases")
    _no_temporaries(report, location.preprocessed)
    print(report.describe(), report.timeline(), sep="\n")


# ---------------------------------------------------------------------------------------------------------------
# train (a fixed schedule)

EPOCHS, ITERATIONS = 4, 8
TIMING_FIELDS = ("seconds", "data_wait_share", "training_seconds")
"""Wall times in the training state and log.csv: measured, so they differ between any two runs."""


def _state_without_times(path: Path) -> object:
    state = json.loads(path.read_text())
    for record in state["state"]["log"]:
        for name in TIMING_FIELDS:
            record.pop(name, None)
    return state


def _log_without_times(path: Path) -> object:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def _epochs(fold_dir: Path) -> str:
    try:
        state = json.loads((fold_dir / "state_latest.json").read_text())["state"]
    except (OSError, ValueError):
        return "no checkpoint"
    final = ", model_final" if (fold_dir / "model_final.safetensors").is_file() else ""
    return f"{state['epochs_done']} of {EPOCHS} epochs{final}"


def test_train_killed_anywhere_resumes_to_identical_weights(tmp_path):
    root = tmp_path / "root"
    location = make_training_root(root)
    fold_dir = root / "results" / TRAIN_DATASET / "3d_fullres" / "fold_0"
    argv = ["train", TRAIN_DATASET, "--fold", "0", "--epochs", str(EPOCHS), "--iterations-per-epoch",
            str(ITERATIONS), "--val-iterations", "1", "--workers", "1", "--device", "cpu", "--root", str(root)]
    command = Command(argv, [*argv, "--resume"], root, tmp_path / "logs")
    seconds = _reference(command, argv)
    # Compared: every weights file and the resume state's tensors (arrays), plans.json, dataset.json,
    # training_config.json and splits.json (bytes), and the state and log.csv without their wall times.
    # Left out: training.log (each run appends to it, with times) and progress.png (it plots the epoch times).
    exclude = {"training.log", "progress.png"}
    transform = {"state_latest.json": _state_without_times, "log.csv": _log_without_times}
    reference = snapshot(fold_dir, lambda p: p.name in exclude, transform)
    splits = (location.preprocessed / "splits.json").read_bytes()
    assert {"model_final.safetensors", "model_best.safetensors", "state_latest.safetensors"} <= set(reference)

    def reset() -> None:
        shutil.rmtree(fold_dir)
        (location.preprocessed / "splits.json").unlink()

    def whole() -> list[str]:
        return half_written(fold_dir, location.preprocessed / "splits.json")

    def complete() -> list[str]:
        found = differences(reference, snapshot(fold_dir, lambda p: p.name in exclude, transform))
        if (location.preprocessed / "splits.json").read_bytes() != splits:
            found.append("splits.json differs")
        return found

    seed = kill_seed()
    report = kill_anywhere(command, seconds, seed, kill_count(4), reset, whole, complete, lambda: _epochs(fold_dir))
    _no_temporaries(report, fold_dir, location.preprocessed)
    print(report.describe(), report.timeline(), sep="\n")


def test_train_killed_after_its_last_checkpoint_resumes_to_model_final(tmp_path):
    """The narrowest moment, hit on purpose: right after the last epoch's state is saved, before model_final (a
    resumed run then has no epoch left to train; it writes the final weights and the files that may lag)."""
    root = tmp_path / "root"
    make_training_root(root)
    fold_dir = root / "results" / TRAIN_DATASET / "3d_fullres" / "fold_0"
    argv = ["train", TRAIN_DATASET, "--fold", "0", "--epochs", "2", "--iterations-per-epoch", "2",
            "--val-iterations", "1", "--workers", "0", "--device", "cpu", "--root", str(root)]
    command = Command(argv, [*argv, "--resume"], root, tmp_path / "logs")

    def last_state_saved() -> bool:
        try:
            return json.loads((fold_dir / "state_latest.json").read_text())["state"]["epochs_done"] == 2
        except (OSError, ValueError):
            return False

    killed = command.run(argv, kill_when=last_state_saved)
    if killed.killed_at is None or (fold_dir / "model_final.safetensors").is_file():
        pytest.skip("the kill came after model_final.safetensors was written")
    resumed = command.run(command.rerun)
    assert resumed.returncode == 0, resumed.output
    assert (fold_dir / "model_final.safetensors").is_file(), resumed.output
    assert len(_log_without_times(fold_dir / "log.csv")) == 2


# ---------------------------------------------------------------------------------------------------------------
# predict (a folder)


def test_predict_killed_anywhere_continues_to_identical_outputs(data_root, tmp_path):
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=6, shape=(32, 36, 34))
    make_trained(data_root, raw, [configuration()], folds=(0,))
    inputs = raw / "imagesTs"

    def argv(output: Path) -> list[str]:
        return ["predict", "-i", str(inputs), "-o", str(output), "--device", "cpu", "--save-probabilities"]

    out = tmp_path / "out"
    command = Command(argv(out), [*argv(out), "--continue"], data_root, tmp_path / "logs")
    seconds = _reference(command, argv(tmp_path / "reference"))
    # Segmentations byte for byte, probabilities as arrays: nothing in a prediction's outputs is measured.
    reference = snapshot(tmp_path / "reference")
    assert len(reference) == 12

    def reset() -> None:
        shutil.rmtree(out, ignore_errors=True)

    seed = kill_seed()
    report = kill_anywhere(command, seconds, seed, kill_count(4), reset, lambda: half_written(out),
                           lambda: differences(reference, snapshot(out)),
                           lambda: f"{len(list(out.glob('*.nii.gz')))} of 6 cases")
    _no_temporaries(report, out)
    print(report.describe(), report.timeline(), sep="\n")


# ---------------------------------------------------------------------------------------------------------------
# export-model and install-model


@pytest.fixture
def trained_model(data_root: Path) -> Path:
    """A dataset with five trained folds of a U-Net of 12 MB each, so that writing the zip (and installing it) is a
    good part of the command's run, not only its start-up."""
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=0)
    plan = configuration()
    plan.network = NetworkConfig(conv_dim=3, in_channels=1, num_classes=3, features_per_stage=[24, 48, 96, 192],
                                 kernel_sizes=[[3, 3, 3]] * 4, strides=[[1, 1, 1]] + [[2, 2, 2]] * 3)
    plans = plans_of(raw.name, plan)
    for fold in range(5):
        make_fold(data_root / "results" / raw.name, plans, plan.name, fold, raw / "dataset.json", seed=fold)
    return data_root / "results" / raw.name


def test_export_model_killed_anywhere_writes_the_same_zip(trained_model, data_root, tmp_path):
    def argv(target: Path) -> list[str]:
        return ["export-model", "Dataset100", "-o", str(target)]

    target = tmp_path / "export" / "model.zip"
    command = Command(argv(target), argv(target), data_root, tmp_path / "logs")
    seconds = _reference(command, argv(tmp_path / "reference.zip"))
    reference = (tmp_path / "reference.zip").read_bytes()

    def complete() -> list[str]:
        return [] if target.read_bytes() == reference else [f"{target}: differs from the uninterrupted export"]

    seed = kill_seed()
    report = kill_anywhere(command, seconds, seed, kill_count(20), lambda: target.unlink(missing_ok=True),
                           lambda: half_written(target.parent), complete,
                           lambda: "zip written" if target.is_file() else "no zip")
    _no_temporaries(report, target.parent)
    print(report.describe(), report.timeline(), sep="\n")


def _installed_folds_usable(results: Path) -> list[str]:
    """A fold folder with its training_config.json looks installed: its weights, plans and dataset.json must be
    there too."""
    problems = []
    for configuration_folder in (p for p in results.glob("*/*") if p.is_dir()):
        for fold in fold_folders(configuration_folder):
            missing = [name for name in ("plans.json", "dataset.json") if not (fold / name).is_file()]
            if not weights_file(fold, "final").is_file():
                missing.append("model_final.safetensors")
            if missing:
                problems.append(f"{fold}: looks installed but lacks {', '.join(missing)}")
    return problems


def test_install_model_killed_anywhere_installs_the_same_files(trained_model, data_root, tmp_path):
    archive = tmp_path / "model.zip"
    export = Command([], [], data_root, tmp_path / "logs")
    assert export.run(["export-model", "Dataset100", "-o", str(archive)]).returncode == 0
    reference_root, root = tmp_path / "reference", tmp_path / "installed"

    def argv(into: Path) -> list[str]:
        return ["install-model", str(archive), "--root", str(into)]

    command = Command(argv(root), argv(root), root, tmp_path / "logs")
    seconds = _reference(command, argv(reference_root))
    reference = snapshot(reference_root / "results")
    assert sum(is_fold_folder(p) for p in (reference_root / "results").rglob("fold_*")) == 5

    def whole() -> list[str]:
        return half_written(root) + _installed_folds_usable(root / "results")

    def progress() -> str:
        return f"{len(fold_folders(root / 'results' / 'Dataset100_Tiny' / '3d_fullres'))} of 5 folds complete"

    seed = kill_seed()
    report = kill_anywhere(command, seconds, seed, kill_count(20), lambda: shutil.rmtree(root, ignore_errors=True),
                           whole, lambda: differences(reference, snapshot(root / "results")), progress)
    _no_temporaries(report, root)
    print(report.describe(), report.timeline(), sep="\n")
