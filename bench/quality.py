"""Quality at a time budget: autounet ``train --budget`` beside nnU-Net compressed to the same wall time.

For each dataset and budget, in one run (so both tools see the same machine load):

1. autounet: ``plan --budget B`` (times 2d and 3d_fullres here and chooses), ``preprocess`` the choice,
   ``train --fold 0 --budget B`` (training and validation of fold 0's held-out cases within B).
2. nnU-Net: ``nnUNetv2_plan_and_preprocess`` for the same configuration, autounet's splits copied to
   ``splits_final.json`` (same held-out cases), a 3-iteration calibration run of ``nnUNetTrainer_CPUBench``
   for its seconds per iteration, then one epoch of as many iterations as fit the budget (minus nnU-Net's
   start-up and an allowance for its final validation), with its final validation.
3. Both tools' fold-0 validation predictions are scored here with the dataset's metric: Hippocampus mean
   foreground Dice (labels 1 and 2), ISBI 2012 pixel error, misclassified fraction and Rand error
   (``adapted_rand_error`` on the cell regions), PH2 Dice.

ISBI 2012's pixel error is the challenge's: one minus the F-score of the non-membrane pixels. The challenge
scores a probability map at its best threshold; a segmentation has a single threshold, so this is that score or
worse. A label's F-score is its Dice, so it is ``1 - Dice(label 0)``. The plain fraction of misclassified
pixels is printed beside it (about 1.55 times larger: membranes are a fifth of the pixels).

Usage:
    python bench/quality.py --budgets 10m,30m,2h
    python bench/quality.py --budgets 2m --data examples --datasets Dataset004_Hippocampus   # smoke test

A 2-hour row in two sittings: ``--skip-nnunet --work W``, then ``--nnunet-only --work W``; where W is gone by
then, ``--nnunet-only --configuration C`` with the configuration autounet chose (its splits are seeded, so the
held-out cases are the same).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import autounet_cmd, link_dataset, nnunet_bin, nnunet_env, print_table, run_measured  # noqa: E402

from autounet.dataset.cases import find_cases  # noqa: E402
from autounet.dataset.spec import load_spec  # noqa: E402
from autounet.io import read_label  # noqa: E402
from autounet.planning.time_budget import format_duration, parse_duration  # noqa: E402
from autounet.training.splits import SPLITS_FILE, load_or_create_splits  # noqa: E402

DATA = REPO.parent / "shared" / "data"
"""Where the datasets are (``--data`` replaces it, e.g. with ``examples`` for a quick smoke test)."""
TRAINER_SOURCE = REPO.parent / "shared" / "bench" / "nnUNetTrainer_CPUBench.py"
DATASETS = ("Dataset004_Hippocampus", "Dataset001_ISBI2012EM", "Dataset010_PH2Dermoscopy")
NNUNET_STARTUP_SECONDS = 16.0
"""nnU-Net's start-up per command on this machine (../shared/bench/README.md)."""
NNUNET_VALIDATION_SHARE = 0.2
"""Share of the budget left to nnU-Net's final validation when its iterations are sized."""


class BenchFailure(Exception):
    """A tool failed (or refused the budget) for one row; the row says why and the script goes on."""


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def dice(reference: np.ndarray, prediction: np.ndarray, label: int) -> float:
    """Dice of one label; 1 when both are empty."""
    ref, pred = reference == label, prediction == label
    total = ref.sum() + pred.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(ref, pred).sum() / total)


def score_case(dataset: str, reference: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The dataset's metric(s) for one case."""
    if dataset.startswith("Dataset001"):
        from skimage.measure import label
        from skimage.metrics import adapted_rand_error

        cells_ref, cells_pred = label(reference == 0), label(prediction == 0)
        return {"pixel error": 1.0 - dice(reference, prediction, 0),
                "misclassified": float(np.mean(reference != prediction)),
                "Rand error": float(adapted_rand_error(cells_ref, cells_pred)[0])}
    labels = [1, 2] if dataset.startswith("Dataset004") else [1]
    return {"Dice": float(np.mean([dice(reference, prediction, k) for k in labels]))}


def score_folder(dataset: str, predictions: Path, labels: Path, ending: str) -> dict[str, float]:
    """Mean of each metric over the predicted cases in ``predictions``."""
    scores: dict[str, list[float]] = {}
    files = sorted(p for p in predictions.iterdir() if p.name.endswith(ending))
    for file in files:
        reference, _ = read_label(labels / file.name)
        prediction, _ = read_label(file)
        for name, value in score_case(dataset, reference, prediction).items():
            scores.setdefault(name, []).append(value)
    if not files:
        return {}
    return {name: float(np.mean(values)) for name, values in scores.items()}


def score_validation(dataset: str, validation: Path, data: Path) -> dict[str, float]:
    """The dataset's metrics over one tool's fold-0 validation predictions."""
    spec = json.loads((data / dataset / "dataset.json").read_text())
    return score_folder(dataset, validation, data / dataset / "labelsTr", spec["file_ending"])


def run_autounet(dataset: str, budget: str, work: Path, data: Path) -> tuple[dict[str, float], float, str]:
    """autounet plan/preprocess/train --budget; its fold-0 scores, train+validate wall seconds and configuration."""
    root = work / "autounet"
    link_dataset(data / dataset, root / "raw")
    env = {"AUTOUNET_HOME": str(root), "PYTHONPATH": str(REPO)}
    for args in (("plan", dataset, "--budget", budget), None, ("train", dataset, "--fold", "0", "--budget", budget)):
        if args is None:
            plans = json.loads((root / "preprocessed" / dataset / "plans.json").read_text())
            configuration = plans["time_budget"]["chosen"]
            args = ("preprocess", dataset, "-c", configuration)
        measured = run_measured(autounet_cmd(*args), env=env, cwd=REPO)
        if measured.returncode != 0:
            raise BenchFailure(f"autounet {args[0]}: {_last_line(measured.output)}")
    scores = score_validation(dataset, root / "results" / dataset / configuration / "fold_0" / "validation", data)
    return scores, measured.wall_s, configuration


def earlier_autounet(dataset: str, work: Path, data: Path) -> tuple[dict[str, float], str]:
    """The scores and configuration of an autounet run :func:`run_autounet` left in ``work`` earlier."""
    root = work / "autounet"
    plans_file = root / "preprocessed" / dataset / "plans.json"
    if not plans_file.is_file():
        raise BenchFailure(f"no earlier autounet run in {work} (run without --nnunet-only first)")
    configuration = json.loads(plans_file.read_text())["time_budget"]["chosen"]
    validation = root / "results" / dataset / configuration / "fold_0" / "validation"
    if not validation.is_dir():
        raise BenchFailure(f"the earlier autounet run in {work} did not validate fold 0")
    return score_validation(dataset, validation, data), configuration


def autounet_splits(dataset: str, work: Path, data: Path) -> Path:
    """autounet's splits of ``dataset``, made afresh where no earlier run left them (they are seeded)."""
    path = work / "autounet" / "preprocessed" / dataset / SPLITS_FILE
    if path.is_file():
        return path
    load_or_create_splits(work, [case.case_id for case in find_cases(data / dataset, load_spec(data / dataset))])
    return work / SPLITS_FILE


def _nnunet_id(dataset: str) -> str:
    return str(int(dataset[7:10]))


def run_nnunet(dataset: str, budget_seconds: float, configuration: str, work: Path, splits: Path,
               data: Path) -> tuple[dict[str, float], float, int]:
    """nnU-Net with CPUBench sized to the budget; its fold-0 scores, train+validate wall seconds, iterations."""
    base = work / "nnunet"
    env = nnunet_env(base)
    link_dataset(data / dataset, base / "raw")
    trainer_dir = Path(nnunet_bin("python")).parents[1]
    targets = list(trainer_dir.glob("lib/python*/site-packages/nnunetv2/training/nnUNetTrainer"))
    if targets:  # every time: a venv made earlier holds an older trainer (one that never annealed its rate)
        shutil.copy(TRAINER_SOURCE, targets[0] / TRAINER_SOURCE.name)
    ident = _nnunet_id(dataset)
    prepared = run_measured([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", ident, "-c", configuration,
                             "-np", "2"], env=env)
    if prepared.returncode != 0:
        raise BenchFailure(f"nnU-Net preprocessing: {_last_line(prepared.output)}")
    shutil.copy(splits, base / "preprocessed" / dataset / "splits_final.json")
    train = [nnunet_bin("nnUNetv2_train"), ident, configuration, "0", "-tr", "nnUNetTrainer_CPUBench",
             "-device", "cpu"]
    calibration = run_measured(train, env={**env, "BENCH_TRAIN_ITERS": "3", "BENCH_VAL_ITERS": "1",
                                           "BENCH_SKIP_FINAL_VAL": "1"})
    timings = next((base / "results").rglob("bench_timings.json"), None)
    if calibration.returncode != 0 or timings is None:
        raise BenchFailure(f"nnU-Net calibration: {_last_line(calibration.output)}")
    per_iteration = json.loads(timings.read_text())["summary"]["iter_s_mean_excl_first"]
    usable = budget_seconds * (1 - NNUNET_VALIDATION_SHARE) - NNUNET_STARTUP_SECONDS
    iterations = max(1, math.floor(usable / per_iteration))
    shutil.rmtree(timings.parent)
    measured = run_measured(train, env={**env, "BENCH_TRAIN_ITERS": str(iterations), "BENCH_VAL_ITERS": "1"})
    if measured.returncode != 0:
        raise BenchFailure(f"nnU-Net training: {_last_line(measured.output)}")
    scores = score_validation(dataset, next((base / "results").rglob("fold_0/validation")), data)
    return scores, measured.wall_s, iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="10m,30m,2h", help="comma-separated durations per fold")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated dataset folder names")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--skip-nnunet", action="store_true", help="run autounet only")
    parser.add_argument("--nnunet-only", action="store_true",
                        help="run nnU-Net beside the autounet run an earlier --skip-nnunet left in --work (same "
                             "held-out cases and configuration): a 2-hour row in two sittings")
    parser.add_argument("--configuration", default=None,
                        help="with --nnunet-only where the earlier autounet run is gone (another machine or "
                             "sitting): the configuration it chose, e.g. 2d; the held-out cases are the same "
                             "(autounet's splits are seeded)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"folder holding the datasets (default {DATA})")
    args = parser.parse_args()
    if args.skip_nnunet and args.nnunet_only:
        parser.error("--skip-nnunet and --nnunet-only exclude each other")
    if args.configuration and not args.nnunet_only:
        parser.error("--configuration goes with --nnunet-only (autounet chooses its own)")
    data = args.data.resolve()
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    seconds = {b: parse_duration(b) for b in budgets}
    work = args.work or Path(tempfile.mkdtemp(prefix="autounet_quality_"))
    rows = []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if not (data / dataset).is_dir():
            print(f"skipping {dataset}: not in {data}")
            continue
        for budget in budgets:
            folder = work / f"{dataset}_{budget}"
            shutil.rmtree(folder / "nnunet" if args.nnunet_only else folder, ignore_errors=True)
            started = time.strftime("%H:%M:%S")
            row = [dataset, format_duration(seconds[budget])]
            try:
                if args.nnunet_only and args.configuration:
                    configuration = args.configuration
                    row += [configuration, "earlier sitting", "-"]
                elif args.nnunet_only:
                    ours, configuration = earlier_autounet(dataset, folder, data)
                    row += [configuration, _fmt(ours), "earlier run"]
                else:
                    ours, our_wall, configuration = run_autounet(dataset, budget, folder, data)
                    row += [configuration, _fmt(ours), f"{our_wall:.0f}"]
            except BenchFailure as failure:
                rows.append(row + ["-", f"failed: {failure}", "-", "-", "-", "-"])
                print(" | ".join(rows[-1]), flush=True)
                continue
            if args.skip_nnunet:
                row += ["-", "-", "-"]
            else:
                splits = autounet_splits(dataset, folder, data)
                try:
                    theirs, their_wall, iterations = run_nnunet(dataset, seconds[budget], configuration, folder,
                                                                splits, data)
                    row += [_fmt(theirs), f"{their_wall:.0f}", str(iterations)]
                except BenchFailure as failure:
                    row += [f"failed: {failure}", "-", "-"]
            print(f"[{started}] " + " | ".join(row), flush=True)
            rows.append(row)
    print_table("Quality at a time budget (fold 0 held-out cases; wall = training + validation)",
                ["dataset", "budget", "autounet config", "autounet", "autounet wall s", "nnU-Net",
                 "nnU-Net wall s", "nnU-Net iterations"], rows)
    print(f"\nwork folder: {work}")


def _fmt(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.items()) or "no cases scored"


if __name__ == "__main__":
    main()
