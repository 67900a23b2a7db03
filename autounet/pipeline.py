"""The whole pipeline in one call: verify -> fingerprint -> plan -> preprocess -> train folds -> find-best -> predict
-> report.

Each step is the same plain function its own command calls; this module only
chains them and collects what a person wants to read at the end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from autounet.errors import UserError
from autounet.paths import DatasetLocation


@dataclass
class PipelineResult:
    """What ``run`` produced: the configurations trained, find-best's choice and where predictions went."""

    dataset: str
    configurations: list[str]
    folds: list[int | str]
    fold_folders: list[Path] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)
    cross_validation_dice: float | None = None
    class_dice: dict[str, float] = field(default_factory=dict)
    postprocessing: str = "none"
    predictions: Path | None = None
    predicted_cases: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    """The HTML report written at the end (results/DATASET/report.html)."""
    budget_choice: str = ""
    """With a duration budget: what planning measured and chose, and each fold's share."""


def default_training_configurations(plans) -> list[str]:
    """``3d_fullres`` for 3D data, else ``2d``: the configuration trained when none is named."""
    return ["3d_fullres"] if "3d_fullres" in plans.configurations else ["2d"]


def with_previous_stages(names: list[str], plans) -> list[str]:
    """``names`` in training order, each cascade preceded by the stage it builds on (added when missing).

    Example:
        >>> with_previous_stages(["3d_cascade_fullres"], plans)  # doctest: +SKIP
        ['3d_lowres', '3d_cascade_fullres']
    """
    ordered: list[str] = []

    def add(name: str) -> None:
        previous = plans.configuration(name).previous_stage
        if previous:
            add(previous)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        add(name)
    return ordered


def folds_to_train(location: DatasetLocation, plans, name: str, names: list[str],
                   folds: list[int | str]) -> list[int | str]:
    """``folds``; for a stage a cascade in ``names`` builds on, every cross-validation fold first, since the
    cascade trains on the stage's predictions of all training cases."""
    if not any(plans.configuration(other).previous_stage == name for other in names):
        return folds
    from autounet.preprocessing.store import CaseStore
    from autounet.training.splits import load_or_create_splits

    case_ids = CaseStore(location.preprocessed / plans.configuration(name).data_identifier).case_ids()
    every: list[int | str] = list(range(len(load_or_create_splits(location.preprocessed, case_ids))))
    return every + [fold for fold in folds if fold not in every]


def _train_or_continue(location: DatasetLocation, configuration: str, fold: int | str, config) -> Path:
    """Train a fold, continue it if it was interrupted, or keep it if it already finished this schedule."""
    from autounet.training import train_fold
    from autounet.training.checkpoint import has_training_state
    from autounet.training.setup import fold_directory, stored_config

    folder = fold_directory(location, configuration, fold)
    stored = stored_config(folder)
    if config.time_budget_seconds is not None:
        same_schedule = stored is not None and stored.time_budget_seconds == config.time_budget_seconds
    else:
        same_schedule = stored is not None and (stored.epochs, stored.iterations_per_epoch) == (
            config.epochs, config.iterations_per_epoch)
    if same_schedule and (folder / "model_final.safetensors").is_file() and (
            folder / "validation" / "summary.json").is_file():
        return folder
    if same_schedule and has_training_state(folder):
        return train_fold(location, configuration, fold, config, resume=True)
    if stored is not None:
        raise UserError(f"{folder}: holds a run with another schedule ({stored.epochs} x "
                        f"{stored.iterations_per_epoch} iterations); continue it with `autounet train "
                        f"{location.name} -c {configuration} --fold {fold} --resume`, or remove the folder.")
    return train_fold(location, configuration, fold, config)


def run_pipeline(location: DatasetLocation, budget: str = "quick", folds: list[int | str] | None = None,
                 configurations: list[str] | None = None, workers: int | None = None, device: str = "auto",
                 gpu_memory_gb: float | None = None, predict_test: bool = True,
                 training_overrides: dict | None = None, preset_name: str | None = None) -> PipelineResult:
    """Run every stage on the dataset at ``location`` and return a summary.

    ``folds`` defaults to all five cross-validation folds; ``configurations``
    to 3d_fullres (3D data) or 2d (2D data). A cascade (``3d_cascade_fullres``) brings its first stage
    along, trained on every fold. When the raw dataset has an
    ``imagesTs/`` folder, its images are segmented with the chosen model into
    ``results/<dataset>/predictions_imagesTs/``. A duration ``budget``
    (``30m``) covers the training and validation of every fold trained,
    split equally between them; planning times 2d and 3d_fullres for one
    fold's share and, unless ``configurations`` are given, trains its choice. ``preset_name`` is planning's
    network preset (``resenc-m``, ...; :mod:`autounet.planning.presets`).

    Example:
        >>> from autounet.paths import locate_dataset, resolve_root
        >>> loc = locate_dataset("examples/Dataset004_Hippocampus", resolve_root())  # doctest: +SKIP
        >>> run_pipeline(loc, budget="quick", folds=[0]).cross_validation_dice      # doctest: +SKIP
        0.71
    """
    import time

    from autounet.evaluation.find_best import find_best
    from autounet.planning.planner import current_fingerprint, plan_dataset
    from autounet.preprocessing.dataset import preprocess_dataset
    from autounet.training import TrainingConfig
    from autounet.planning.time_budget import format_duration, time_budget_seconds as budget_seconds

    folds = folds if folds is not None else [0, 1, 2, 3, 4]
    total_budget = budget_seconds(budget)
    fold_budget = None
    if total_budget is not None:
        fold_budget = total_budget / (len(folds) * max(1, len(configurations or [""])))
        budget = f"{fold_budget:.3f}s"
    with _budget_shared_by(total_budget, fold_budget):
        clock = {}
        start = time.perf_counter()
        # Verifies the raw data once, unless the fingerprint shows it unchanged since it was verified.
        current_fingerprint(location, workers)
        clock["verify + fingerprint"] = time.perf_counter() - start

        start = time.perf_counter()
        plans = plan_dataset(location, gpu_memory_gb=gpu_memory_gb, device=device, workers=workers,
                             time_budget_seconds=fold_budget, preset_name=preset_name)
        if plans.time_budget is not None:
            from autounet.utils.progress import console

            console.print(plans.time_budget.describe(), highlight=False)
        chosen = [plans.time_budget.chosen] if plans.time_budget is not None else None
        names = with_previous_stages(configurations or chosen or default_training_configurations(plans), plans)
        clock["plan"] = time.perf_counter() - start

        start = time.perf_counter()
        summary = preprocess_dataset(location, configurations=names, workers=workers)
        if not summary.ok:
            raise UserError(f"{summary.failures[0].message} ({len(summary.failures)} case(s) failed to preprocess).")
        clock["preprocess"] = time.perf_counter() - start

        config = TrainingConfig.from_budget(budget, device=None if device == "auto" else device,
                                            **(training_overrides or {}))
        result = PipelineResult(location.name, names, folds)
        if plans.time_budget is not None:
            result.budget_choice = (f"{format_duration(total_budget)} split into {len(folds) * len(names)} fold(s) of "
                                    f"{format_duration(fold_budget)}; {plans.time_budget.describe()}")
        start = time.perf_counter()
        for name in names:
            for fold in folds_to_train(location, plans, name, names, folds):
                result.fold_folders.append(_train_or_continue(location, name, fold, config))
        clock["train + validate"] = time.perf_counter() - start

        start = time.perf_counter()
        choice = find_best(location, configurations=names, workers=workers)
        result.chosen = choice.configurations
        result.cross_validation_dice = choice.foreground_dice_postprocessed
        result.class_dice = dict(choice.class_dice_postprocessed)
        result.postprocessing = choice.postprocessing.describe()
        clock["find-best"] = time.perf_counter() - start

        test_images = location.raw / "imagesTs"
        if predict_test and test_images.is_dir() and any(test_images.iterdir()):
            from autounet.inference.folder import predict_folder
            from autounet.model_loading import ModelRequest, load_predictor

            start = time.perf_counter()
            predictor, _ = load_predictor(ModelRequest(model_dir=location.results, device=device))
            result.predictions = location.results / "predictions_imagesTs"
            outcome = predict_folder(predictor, [test_images], result.predictions)
            if outcome.failed:
                raise UserError(outcome.failed[0])
            result.predicted_cases = len(outcome.predicted)
            clock["predict imagesTs"] = time.perf_counter() - start
        from autounet.report import write_report

        start = time.perf_counter()
        result.report = write_report(location)
        clock["report"] = time.perf_counter() - start
        result.seconds = clock
        return result


@contextlib.contextmanager
def _budget_shared_by(total_budget: float | None, fold_budget: float | None):
    """Restate a fold's too-small budget for the whole --budget that ``run`` shares among its folds."""
    from autounet.planning.time_budget import TimeBudgetTooSmallError as BudgetTooSmallError
    from autounet.planning.time_budget import format_at_least, format_duration

    try:
        yield
    except BudgetTooSmallError as error:
        if not total_budget or not fold_budget or round(total_budget / fold_budget) <= 1:
            raise
        parts = round(total_budget / fold_budget)
        raise UserError(f"a {format_duration(total_budget)} budget shared by {parts} folds "
                        f"({format_duration(fold_budget)} each) is too small: {error.reason}; give --budget "
                        f"{format_at_least(error.smallest_seconds * parts)} or more.") from None
