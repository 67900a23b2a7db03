"""Quality at a time budget: autounet ``train --budget`` beside nnU-Net compressed to the same wall time.

For each dataset and budget, in one run (so both tools see the same machine load):

1. autounet: ``plan --budget B`` (times 2d and 3d_fullres here and chooses), ``preprocess`` the choice,
   ``train --fold 0 --budget B`` (training and validation of fold 0's held-out cases within B).
2. nnU-Net: ``nnUNetv2_plan_and_preprocess`` for the same configuration, autounet's splits copied to
   ``splits_final.json`` (same held-out cases), an 8-iteration calibration run of ``nnUNetTrainer_CPUBench``
   (its first 3 iterations, which run slow, left out) for its seconds per iteration, then one epoch of as many
   iterations as fit the budget (minus nnU-Net's start-up and an allowance for its final validation), annealing
   nnU-Net's poly learning rate over them, with its final validation. Where its planned batch is over 2 it
   also runs at batch 2 and the better of the two counts ("best of batch planned / 2").
3. Both tools' fold-0 validation predictions are scored here with the dataset's metric: Hippocampus mean
   foreground Dice (labels 1 and 2), ISBI 2012 pixel error, misclassified fraction and Rand error
   (``adapted_rand_error`` on the cell regions), PH2 Dice.

ISBI 2012's pixel error is the challenge's: one minus the F-score of the non-membrane pixels. The challenge
scores a probability map at its best threshold; a segmentation has a single threshold, so this is that score or
worse. A label's F-score is its Dice, so it is ``1 - Dice(label 0)``. The plain fraction of misclassified
pixels is printed beside it (about 1.55 times larger: membranes are a fifth of the pixels).

Each cell can be repeated (``--repeats 3``: autounet with seeds 12345, 12346, ...) and run on several folds
(``--folds 0,1,2,3,4``: each fold gets the budget, the scores pool every validated case). The last table gives
each cell as mean ± sd over runs and a verdict: a tool wins only when its mean beats the other's by more than both
standard deviations (single runs: by more than ``--noise``); otherwise it is a tie. Both tools' share of the
budget used is printed.

Usage:
    python bench/quality.py --budgets 10m --repeats 3         # the 10-minute column, 3 runs per tool and cell
    python bench/quality.py --budgets 5m --datasets Dataset004_Hippocampus --folds 0,1,2,3,4   # cross-validation
    python bench/quality.py --budgets 10m,30m,2h
    python bench/quality.py --budgets 2m --data examples --datasets Dataset004_Hippocampus   # smoke test

Sittings that do not share a machine: ``--record FILE`` appends each finished run (both tools' scores, the
commit, the row printed) to a JSON-lines file, and a later call with the same file and arguments reuses the runs
recorded there (same dataset, budget, folds and repeat number) instead of running them again. Commit the file
(bench/results/quality_runs.jsonl) after each sitting, so that three 10-minute repeats can be spread over sessions:

    python bench/quality.py --budgets 10m --repeats 3 --datasets Dataset001_ISBI2012EM --record FILE

A recorded run whose nnU-Net ran only a planned batch over 2 (recorded before batch 2 was tried beside every such
batch) is completed there by nnU-Net at batch 2, in the same work folder, and the record gains the better of the two.

A 2-hour row in two sittings: ``--skip-nnunet --work W``, then ``--nnunet-only --work W``; where W is gone by
then, ``--nnunet-only --configuration C`` with the configuration autounet chose (its splits are seeded, so the
held-out cases are the same). Where nnU-Net's two batches do not fit one sitting, ``--nnunet-only
--defer-small-batch --record FILE`` runs its planned batch, and the plain call with the same record file later adds
batch 2.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
CALIBRATION_ITERATIONS = 8
CALIBRATION_WARMUP = 3
"""nnU-Net's seconds per iteration are the mean of a calibration run's iterations after its first three (the first
ones run slow: at 2 hours a 3-iteration calibration left about 35 % of the budget unused)."""
SMALL_BATCH = 2
"""Where nnU-Net plans a larger batch, it also runs at this one and the better of the two counts. (Until commit
edce32a only where the planned batch bought under 50 iterations; at 30 minutes Hippocampus's batch 366 bought 151
and scored Dice 0.21, where batch 2 had scored 0.85 at 10 minutes, so 50 was too low to find nnU-Net's better
setup. The change can only raise nnU-Net's cells.)"""
WALL_FILE = "training_wall.json"
"""Beside autounet's run in the work folder: its training and validation wall seconds and the budget, for a later
``--nnunet-only`` sitting."""


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


def score_cases(dataset: str, predictions: Path, labels: Path, ending: str) -> dict[str, list[float]]:
    """Each metric for every predicted case in ``predictions`` (case order)."""
    scores: dict[str, list[float]] = {}
    for file in sorted(p for p in predictions.iterdir() if p.name.endswith(ending)):
        reference, _ = read_label(labels / file.name)
        prediction, _ = read_label(file)
        for name, value in score_case(dataset, reference, prediction).items():
            scores.setdefault(name, []).append(value)
    return scores


def score_validation(dataset: str, validation: Path, data: Path) -> dict[str, list[float]]:
    """The dataset's metrics for each case of one tool's validation predictions of one fold."""
    spec = json.loads((data / dataset / "dataset.json").read_text())
    return score_cases(dataset, validation, data / dataset / "labelsTr", spec["file_ending"])


def pooled_scores(dataset: str, validations: list[Path], data: Path) -> dict[str, list[float]]:
    """The dataset's metrics for every case of several folds' validation predictions, pooled (fold order)."""
    scores: dict[str, list[float]] = {}
    for validation in validations:
        for name, values in score_validation(dataset, validation, data).items():
            scores.setdefault(name, []).extend(values)
    return scores


def nnunet_name(configuration: str) -> str:
    """nnU-Net's configuration for autounet's choice: a network autounet fitted to the budget (``2d_fitted_10m``)
    derives from nnU-Net's ``2d``, which nnU-Net then trains with its own plan."""
    return configuration.split("_fitted_")[0]


@dataclass
class Outcome:
    """One tool's run of one cell: per-case scores over the folds, wall seconds of training and validation, and
    what was trained."""

    scores: dict[str, list[float]]
    wall_s: float
    budget_s: float
    what: str
    iterations: list[int] = field(default_factory=list)
    """nnU-Net: the iterations each fold was given."""
    batch: int = 0

    @property
    def used(self) -> float:
        return self.wall_s / self.budget_s


def run_autounet(dataset: str, budget: str, work: Path, data: Path, folds: list[int], seed: int) -> Outcome:
    """autounet plan/preprocess/train --budget on each fold (one fold's budget each); scores over their cases."""
    root = work / "autounet"
    link_dataset(data / dataset, root / "raw")
    # each run measures the machine itself (no step timings remembered from an earlier run or repeat)
    env = {"AUTOUNET_HOME": str(root), "PYTHONPATH": str(REPO), "AUTOUNET_CACHE_DIR": str(root / "timing-cache")}
    for args in (("plan", dataset, "--budget", budget), ("preprocess", dataset, "-c", "CHOSEN")):
        if args[-1] == "CHOSEN":
            args = args[:-1] + (_chosen(root, dataset),)
        measured = run_measured(autounet_cmd(*args), env=env, cwd=REPO)
        if measured.returncode != 0:
            raise BenchFailure(f"autounet {args[0]}: {_last_line(measured.output)}")
    configuration = _chosen(root, dataset)
    wall = 0.0
    for fold in folds:
        measured = run_measured(autounet_cmd("train", dataset, "--fold", str(fold), "--budget", budget, "--seed",
                                             str(seed)), env=env, cwd=REPO)
        if measured.returncode != 0:
            raise BenchFailure(f"autounet train fold {fold}: {_last_line(measured.output)}")
        wall += measured.wall_s
    budget_s = parse_duration(budget) * len(folds)
    # kept for a later --nnunet-only sitting, which reports the share of the budget autounet used
    (root / WALL_FILE).write_text(json.dumps({"wall_s": wall, "budget_s": budget_s}))
    scores = pooled_scores(dataset, [_autounet_validation(root, dataset, configuration, fold) for fold in folds], data)
    return Outcome(scores, wall, budget_s, configuration)


def _autounet_validation(root: Path, dataset: str, configuration: str, fold: int) -> Path:
    return root / "results" / dataset / configuration / f"fold_{fold}" / "validation"


def _chosen(root: Path, dataset: str) -> str:
    return json.loads((root / "preprocessed" / dataset / "plans.json").read_text())["time_budget"]["chosen"]


def earlier_autounet(dataset: str, work: Path, data: Path, folds: list[int]) -> tuple[Outcome, str]:
    """The outcome and configuration of an autounet run :func:`run_autounet` left in ``work`` earlier."""
    root = work / "autounet"
    if not (root / "preprocessed" / dataset / "plans.json").is_file():
        raise BenchFailure(f"no earlier autounet run in {work} (run without --nnunet-only first)")
    configuration = _chosen(root, dataset)
    validations = [_autounet_validation(root, dataset, configuration, fold) for fold in folds]
    for fold, validation in zip(folds, validations):
        if not validation.is_dir():
            raise BenchFailure(f"the earlier autounet run in {work} did not validate fold {fold}")
    scores = pooled_scores(dataset, validations, data)
    wall = json.loads((root / WALL_FILE).read_text()) if (root / WALL_FILE).is_file() else {}
    return (Outcome(scores, wall.get("wall_s", math.nan), wall.get("budget_s", math.nan), configuration),
            configuration)


def autounet_splits(dataset: str, work: Path, data: Path) -> Path:
    """autounet's splits of ``dataset``, made afresh where no earlier run left them (they are seeded)."""
    path = work / "autounet" / "preprocessed" / dataset / SPLITS_FILE
    if path.is_file():
        return path
    load_or_create_splits(work, [case.case_id for case in find_cases(data / dataset, load_spec(data / dataset))])
    return work / SPLITS_FILE


def _nnunet_id(dataset: str) -> str:
    return str(int(dataset[7:10]))


def _set_nnunet_batch(base: Path, dataset: str, configuration: str, batch: int) -> int:
    """Set the batch of ``configuration`` in nnU-Net's plans (0: keep it); returns the batch it planned."""
    plans_file = base / "preprocessed" / dataset / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    planned = plans["configurations"][configuration]["batch_size"]
    if batch:
        plans["configurations"][configuration]["batch_size"] = batch
        plans_file.write_text(json.dumps(plans, indent=2))
    return planned


def _nnunet_iteration_seconds(timings: Path) -> float:
    """Seconds per iteration from a calibration run, its first :data:`CALIBRATION_WARMUP` iterations left out."""
    bench = json.loads(timings.read_text())
    totals = [step + wait for step, wait in zip(bench["train_step_s"], bench["train_wait_s"])]
    settled = totals[CALIBRATION_WARMUP:] or totals[-1:]
    return float(np.mean(settled))


def run_nnunet(dataset: str, budget_seconds: float, configuration: str, work: Path, splits: Path, data: Path,
               folds: list[int], batch: int | None = None) -> Outcome:
    """nnU-Net (its plan, its recipe with the annealing learning rate) sized to the whole budget of each fold by a
    calibration run without its warm-up; with ``batch`` its plan's batch is replaced."""
    base = work / ("nnunet" if batch is None else f"nnunet_batch{batch}")
    shutil.rmtree(base, ignore_errors=True)  # an earlier or interrupted run's results would be found as this one's
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
    planned = _set_nnunet_batch(base, dataset, configuration, batch or 0)
    shutil.copy(splits, base / "preprocessed" / dataset / "splits_final.json")
    wall = 0.0
    total_iterations = []
    for fold in folds:
        train = [nnunet_bin("nnUNetv2_train"), ident, configuration, str(fold), "-tr", "nnUNetTrainer_CPUBench",
                 "-device", "cpu"]
        calibration = run_measured(train, env={**env, "BENCH_TRAIN_ITERS": str(CALIBRATION_ITERATIONS),
                                               "BENCH_VAL_ITERS": "1", "BENCH_SKIP_FINAL_VAL": "1"})
        timings = next((base / "results").rglob(f"fold_{fold}/bench_timings.json"), None)
        if calibration.returncode != 0 or timings is None:
            raise BenchFailure(f"nnU-Net calibration: {_last_line(calibration.output)}")
        per_iteration = _nnunet_iteration_seconds(timings)
        shutil.rmtree(timings.parent)
        usable = budget_seconds * (1 - NNUNET_VALIDATION_SHARE) - NNUNET_STARTUP_SECONDS
        iterations = max(1, math.floor(usable / per_iteration))
        total_iterations.append(iterations)
        measured = run_measured(train, env={**env, "BENCH_TRAIN_ITERS": str(iterations), "BENCH_VAL_ITERS": "1"})
        if measured.returncode != 0:
            raise BenchFailure(f"nnU-Net training fold {fold}: {_last_line(measured.output)}")
        wall += measured.wall_s
    scores = pooled_scores(dataset, [next((base / "results").rglob(f"fold_{fold}/validation")) for fold in folds],
                           data)
    batch_note = f"batch {batch} (planned {planned})" if batch else f"planned batch {planned}"
    return Outcome(scores, wall, budget_seconds * len(folds),
                   f"{configuration}, {batch_note}, {'/'.join(map(str, total_iterations))} iterations",
                   total_iterations, batch or planned)


BEST_OF_BATCHES = " (best of batch planned / 2)"


def nnunet_best_honest(dataset: str, budget_seconds: float, configuration: str, work: Path, splits: Path, data: Path,
                       folds: list[int], small_batch: bool = True) -> tuple[Outcome, dict[int, float]]:
    """nnU-Net with its planned batch and, where that is over :data:`SMALL_BATCH` (and ``small_batch``), at that
    batch too; the better of the two (as a user with this much time would choose), and each batch's headline
    score."""
    planned = run_nnunet(dataset, budget_seconds, configuration, work, splits, data, folds)
    tried = [planned]
    if small_batch and planned.batch > SMALL_BATCH:
        tried.append(run_nnunet(dataset, budget_seconds, configuration, work, splits, data, folds, batch=SMALL_BATCH))
    scores = {outcome.batch: _headline(dataset, outcome.scores) for outcome in tried}
    if len(tried) == 1:
        return planned, scores
    better = tried[0] if is_better(dataset, scores[tried[0].batch], scores[tried[1].batch]) else tried[1]
    better.what += BEST_OF_BATCHES
    return better, scores


def is_better(dataset: str, value: float, other: float) -> bool:
    """Whether headline score ``value`` is at least as good as ``other`` (ISBI's pixel error: lower is better)."""
    return value <= other if dataset.startswith("Dataset001") else value >= other


def recorded_batches(entry: dict) -> dict[int, float | None]:
    """The nnU-Net batches a recorded run tried, with their headline scores where known: from the entry's
    ``nnunet_batches``, or for entries written before it from the row's nnU-Net column (which names the batch that
    counted: ``planned batch 366``, or ``batch 2 (planned 366)`` with the best-of note where both ran)."""
    if "nnunet_batches" in entry:
        return {int(batch): value for batch, value in entry["nnunet_batches"].items()}
    what = entry["row"][6]
    found = re.search(r"planned batch (\d+)", what) or re.search(r"batch (\d+) \(planned (\d+)\)", what)
    if found is None:
        return {}
    counted = int(found.group(1))
    batches: dict[int, float | None] = {counted: entry["nnunet"]}
    if BEST_OF_BATCHES.strip() in what:
        batches[int(found.group(2)) if found.lastindex == 2 else SMALL_BATCH] = None
    return batches


def needs_small_batch(entry: dict) -> bool:
    """Whether a recorded run predates the rule that tries :data:`SMALL_BATCH` beside a larger planned batch."""
    batches = recorded_batches(entry)
    return bool(batches) and max(batches) > SMALL_BATCH and SMALL_BATCH not in batches


def _headline(dataset: str, scores: dict[str, list[float]]) -> float:
    """The cell's main number: mean Dice, or for ISBI the pixel error."""
    return float(np.mean(scores["pixel error" if dataset.startswith("Dataset001") else "Dice"]))


def verdict(dataset: str, ours: list[float], theirs: list[float], noise: float = 0.03) -> str:
    """Which tool wins a cell: its mean beats the other's by more than both standard deviations (single runs: by
    more than ``noise``, the spread measured at 10 minutes); otherwise a tie."""
    lower_is_better = dataset.startswith("Dataset001")
    diff = float(np.mean(ours) - np.mean(theirs)) * (-1 if lower_is_better else 1)
    margin = (float(np.std(ours, ddof=1)) + float(np.std(theirs, ddof=1))
              if len(ours) > 1 and len(theirs) > 1 else noise)
    if abs(diff) <= margin:
        return "tie"
    return "autounet" if diff > 0 else "nnU-Net"


def run_key(dataset: str, budget: str, folds: list[int], repeat: int) -> dict:
    """What identifies one run of a cell in a record file (the budget as seconds, so 10m and 600s are one cell)."""
    return {"dataset": dataset, "budget_s": parse_duration(budget), "folds": list(folds), "repeat": repeat}


def load_record(path: Path | None) -> list[dict]:
    """The runs recorded in a JSON-lines file (none where it does not exist yet)."""
    if path is None or not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as error:
            sys.exit(f"{path}: line {number} is not JSON ({error.msg}); fix or remove that line")
    return entries


def recorded_run(record: list[dict], key: dict) -> dict | None:
    """The run recorded with ``key``, or None: the last entry's, or where sittings recorded the two tools apart
    (``"autounet": null`` or ``"nnunet": null``), the last autounet half joined with the last nnU-Net half."""
    found = [entry for entry in record if {name: entry.get(name) for name in key} == key]
    if not found:
        return None
    ours = next((entry for entry in reversed(found) if entry.get("autounet") is not None), None)
    theirs = next((entry for entry in reversed(found) if entry.get("nnunet") is not None), None)
    if ours is None or theirs is None or ours is theirs:
        return ours or theirs or found[-1]
    joined = {name: value for name, value in ours.items() if name != "nnunet_batches"}
    joined.update(nnunet=theirs["nnunet"], row=ours["row"][:6] + theirs["row"][6:],
                  commit=f"{ours['commit']}; nnU-Net at {theirs['commit']}")
    if "nnunet_batches" in theirs:
        joined["nnunet_batches"] = theirs["nnunet_batches"]
    return joined


def append_record(path: Path, key: dict, commit: str, row: list[str], ours: float | None, theirs: float | None,
                  batches: dict[int, float | None] | None = None) -> None:
    """Append one run to the record file: both tools' headline scores (None for a tool a sitting left to a later
    one) and the nnU-Net batches tried."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {**key, "commit": commit, "autounet": ours, "nnunet": theirs, "row": row,
             "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if batches:
        entry["nnunet_batches"] = {str(batch): value for batch, value in batches.items()}
    with path.open("a") as stream:
        stream.write(json.dumps(entry) + "\n")


def with_small_batch(entry: dict, folder: Path, data: Path, commit: str) -> dict:
    """A recorded run completed by nnU-Net at :data:`SMALL_BATCH` (in ``folder``, on autounet's held-out cases):
    the entry with the better of its nnU-Net run and the new one, and both batches' scores."""
    dataset, budget_seconds, folds = entry["dataset"], entry["budget_s"], entry["folds"]
    print(f"[{time.strftime('%H:%M:%S')}] {dataset} {format_duration(budget_seconds)} run {entry['repeat']}: "
          f"recorded at {entry['commit']} without nnU-Net at batch {SMALL_BATCH}; running it now", flush=True)
    small = run_nnunet(dataset, budget_seconds, nnunet_name(entry["row"][3]), folder,
                       autounet_splits(dataset, folder, data), data, folds, batch=SMALL_BATCH)
    value = _headline(dataset, small.scores)
    counts = is_better(dataset, value, entry["nnunet"])
    row = entry["row"][:6]
    if counts:
        row += [small.what + BEST_OF_BATCHES, _fmt(small.scores), _used(small)]
    else:
        row += [entry["row"][6] + BEST_OF_BATCHES, *entry["row"][7:9]]
    batches = {**recorded_batches(entry), SMALL_BATCH: value}
    return {**entry, "row": row, "nnunet": value if counts else entry["nnunet"], "nnunet_batches": batches,
            "commit": f"{entry['commit']}, batch {SMALL_BATCH} at {commit}"}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="10m,30m,2h", help="comma-separated durations per fold")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated dataset folder names")
    parser.add_argument("--folds", default="0", help="comma-separated folds; each gets the budget (scores pool "
                                                      "every validated case)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool and cell (autounet seeds "
                                                               "12345, 12346, ...)")
    parser.add_argument("--noise", type=float, default=0.03,
                        help="the spread of single runs measured at 10 minutes: a single-run difference within it "
                             "is a tie (default 0.03 Dice: Hippocampus 10 min, 0.846 then 0.875)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--skip-nnunet", action="store_true", help="run autounet only")
    parser.add_argument("--nnunet-only", action="store_true",
                        help="run nnU-Net beside the autounet run an earlier --skip-nnunet left in --work (same "
                             "held-out cases and configuration): a 2-hour row in two sittings")
    parser.add_argument("--defer-small-batch", action="store_true",
                        help=f"run nnU-Net at its planned batch only; a later call with the same --record adds "
                             f"batch {SMALL_BATCH} where the plan's is larger (a row too long for one sitting)")
    parser.add_argument("--configuration", default=None,
                        help="with --nnunet-only where the earlier autounet run is gone (another machine or "
                             "sitting): the configuration it chose, e.g. 2d; the held-out cases are the same "
                             "(autounet's splits are seeded)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"folder holding the datasets (default {DATA})")
    parser.add_argument("--record", type=Path, default=None,
                        help="JSON-lines file of finished runs: runs recorded there are reused, new ones appended "
                             "(e.g. bench/results/quality_runs.jsonl, committed after each sitting)")
    args = parser.parse_args()
    if args.skip_nnunet and args.nnunet_only:
        parser.error("--skip-nnunet and --nnunet-only exclude each other")
    if args.configuration and not args.nnunet_only:
        parser.error("--configuration goes with --nnunet-only (autounet chooses its own)")
    if args.defer_small_batch and (args.skip_nnunet or not args.record):
        parser.error("--defer-small-batch needs nnU-Net to run and a --record file for the later call")
    data = args.data.resolve()
    budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
    folds = [int(f) for f in args.folds.split(",") if f.strip()]
    seconds = {b: parse_duration(b) for b in budgets}
    work = args.work or Path(tempfile.mkdtemp(prefix="autounet_quality_"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"autounet at commit {commit} (the rules measured are this commit's)", flush=True)
    record = load_record(args.record)
    runs, cells = [], []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if not (data / dataset).is_dir():
            print(f"skipping {dataset}: not in {data}")
            continue
        for budget in budgets:
            ours_runs: list[float] = []
            theirs_runs: list[float] = []
            for repeat in range(args.repeats):
                key = run_key(dataset, budget, folds, repeat)
                entry = measure_run(args, key, budget, work / f"{dataset}_{budget}_run{repeat}", data, commit,
                                    recorded_run(record, key))
                runs.append(entry["row"])
                if entry["autounet"] is not None:
                    ours_runs.append(entry["autounet"])
                if entry["nnunet"] is not None:
                    theirs_runs.append(entry["nnunet"])
            metric = "pixel error" if dataset.startswith("Dataset001") else "Dice"
            call = verdict(dataset, ours_runs, theirs_runs, args.noise) if ours_runs and theirs_runs else "-"
            cells.append([dataset, format_duration(seconds[budget]), metric, _mean_sd(ours_runs),
                          _mean_sd(theirs_runs), call])
    print_table("Every run (folds " + ",".join(map(str, folds)) + "; scores pool their validation cases; used = "
                "training + validation wall time over the budget)",
                ["dataset", "budget", "run", "autounet config", "autounet", "autounet used", "nnU-Net",
                 "nnU-Net scores", "nnU-Net used"], runs)
    print_table("Cells (mean ± sd over runs; a win needs a margin over both sds, or over --noise for single runs)",
                ["dataset", "budget", "metric", "autounet", "nnU-Net", "verdict"], cells)
    print(f"\nwork folder: {work}")


def measure_run(args: argparse.Namespace, key: dict, budget_text: str, folder: Path, data: Path, commit: str,
                earlier: dict | None) -> dict:
    """One run of a cell: what the record holds of it, and whatever the options ask for that it lacks (autounet,
    nnU-Net, or nnU-Net's batch 2 beside a recorded larger planned batch), appended to the record when new."""
    dataset, budget, repeat = key["dataset"], key["budget_s"], key["repeat"]
    entry = {**key, "commit": commit, "autounet": None, "nnunet": None,
             "row": [dataset, format_duration(budget), str(repeat), "-", "-", "-", "-", "-", "-"]}
    if earlier:
        entry = {**earlier, "row": list(earlier["row"])}
    started, ran = time.strftime("%H:%M:%S"), False
    try:
        if entry["autounet"] is None and args.nnunet_only and args.configuration:
            entry["row"][3:6] = [args.configuration, "earlier sitting", "-"]
        elif entry["autounet"] is None and args.nnunet_only:
            ours, configuration = earlier_autounet(dataset, folder, data, key["folds"])
            entry["row"][3:6] = [configuration, _fmt(ours.scores), _used(ours)]
            entry["autounet"] = _headline(dataset, ours.scores)
        elif entry["autounet"] is None:
            shutil.rmtree(folder, ignore_errors=True)
            ours = run_autounet(dataset, budget_text, folder, data, key["folds"], seed=12345 + repeat)
            entry["row"][3:6] = [ours.what, _fmt(ours.scores), _used(ours)]
            entry["autounet"], entry["commit"], ran = _headline(dataset, ours.scores), commit, True
    except BenchFailure as failure:
        entry["row"][3:] = [f"autounet failed: {failure}", "-", "-", "-", "-", "-"]
        _label_recorded(entry, earlier)
        print(" | ".join(entry["row"]), flush=True)
        return entry
    if not args.skip_nnunet and entry["nnunet"] is None:
        try:
            theirs, batches = nnunet_best_honest(dataset, budget, nnunet_name(entry["row"][3]), folder,
                                                 autounet_splits(dataset, folder, data), data, key["folds"],
                                                 small_batch=not args.defer_small_batch)
        except BenchFailure as failure:
            entry["row"][6:9] = [f"failed: {failure}", "-", "-"]
        else:
            entry["row"][6:9] = [theirs.what, _fmt(theirs.scores), _used(theirs)]
            entry["nnunet"], entry["nnunet_batches"] = batches[theirs.batch], batches
            ran = True
            if earlier:
                entry["commit"] = f"{earlier['commit']}; nnU-Net at {commit}"
    elif not args.skip_nnunet and not args.defer_small_batch and needs_small_batch(entry):
        try:
            completed = with_small_batch(entry, folder, data, commit)
        except BenchFailure as failure:
            print(f"nnU-Net at batch {SMALL_BATCH} beside recorded run {repeat} failed: {failure}", flush=True)
        else:
            entry, ran = completed, True
    _label_recorded(entry, earlier)
    print(f"[{started}] " + " | ".join(entry["row"]), flush=True)
    if ran and args.record:
        append_record(args.record, key, entry["commit"], [*entry["row"][:2], str(repeat), *entry["row"][3:]],
                      entry["autounet"], entry["nnunet"],
                      recorded_batches(entry) if entry["nnunet"] is not None else None)
    return entry


def _label_recorded(entry: dict, earlier: dict | None) -> None:
    """Name, in the printed run label of a run the record already held, the commit of every sitting that made it
    (called last, so this sitting's is included)."""
    if earlier:
        entry["row"][2] = f"{entry['repeat']} (recorded at {entry['commit']})"


def _used(outcome: Outcome) -> str:
    return f"{outcome.used:.0%}" if outcome.used == outcome.used else "-"


def _fmt(scores: dict[str, list[float]]) -> str:
    return ", ".join(f"{name} {np.mean(values):.4f}" for name, values in scores.items()) or "no cases scored"


if __name__ == "__main__":
    main()
