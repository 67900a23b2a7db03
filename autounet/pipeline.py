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
    budget_seconds: float | None = None
    """The duration budget of the whole run, if one was given."""
    training_seconds: float = 0.0
    """Seconds spent in training iterations, summed over the folds trained in this run under a duration budget."""
    iterations: int = 0
    """Training iterations run in those seconds."""


def default_training_configurations(plans) -> list[str]:
    """The configuration trained when none is named (:meth:`Plans.default_configuration`), as a list."""
    return [plans.default_configuration()]


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


def _same_schedule(stored, config) -> bool:
    """Whether the run stored in a fold folder is the one ``config`` asks for (so it is kept or continued)."""
    if stored is None:
        return False
    if config.run_time_budget_seconds is not None:
        if stored.run_time_budget_seconds is not None:
            return stored.run_time_budget_seconds == config.run_time_budget_seconds
        return stored.time_budget_seconds is not None  # trained by an older autounet under a run's budget
    if config.time_budget_seconds is not None:
        return stored.time_budget_seconds == config.time_budget_seconds
    return (stored.epochs, stored.iterations_per_epoch) == (config.epochs, config.iterations_per_epoch)


def _train_or_continue(location: DatasetLocation, configuration: str, fold: int | str, config) -> tuple[Path, bool]:
    """Train a fold, continue it if it was interrupted, or keep it if it already finished this schedule; the fold
    folder, and whether it trained now."""
    from autounet.training import train_fold
    from autounet.training.checkpoint import has_training_state
    from autounet.training.setup import fold_directory, stored_config

    folder = fold_directory(location, configuration, fold)
    stored = stored_config(folder)
    same_schedule = _same_schedule(stored, config)
    if same_schedule and (folder / "model_final.safetensors").is_file() and (
            folder / "validation" / "summary.json").is_file():
        return folder, False
    if same_schedule and has_training_state(folder):
        return train_fold(location, configuration, fold, config, resume=True), True
    if stored is not None:
        raise UserError(f"{folder}: holds a run with another schedule ({stored.epochs} x "
                        f"{stored.iterations_per_epoch} iterations); continue it with `autounet train "
                        f"{location.name} -c {configuration} --fold {fold} --resume`, or remove the folder.")
    return train_fold(location, configuration, fold, config), True


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
    (``30m``) covers the whole run up to the report (:mod:`autounet.run_budget`): planning times 2d and
    3d_fullres for one fold's nominal share and, unless ``configurations`` are given, trains its choice; each
    fold trains for its share of the time left. ``preset_name`` is planning's
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
    from autounet.run_budget import RunBudget

    folds = folds if folds is not None else [0, 1, 2, 3, 4]
    total_budget = budget_seconds(budget)
    run_budget = None
    if total_budget is not None:
        run_budget = RunBudget(total_budget, len(folds) * max(1, len(configurations or [""])))
    with _budget_shared_by(run_budget):
        clock = {}
        start = time.perf_counter()
        # Verifies the raw data once, unless the fingerprint shows it unchanged since it was verified.
        current_fingerprint(location, workers)
        clock["verify + fingerprint"] = time.perf_counter() - start

        start = time.perf_counter()
        plans = plan_dataset(location, gpu_memory_gb=gpu_memory_gb, device=device, workers=workers,
                             time_budget_seconds=run_budget.nominal_fold_seconds() if run_budget else None,
                             preset_name=preset_name,
                             timing_allowance_seconds=run_budget.planning_allowance() if run_budget else None)
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

        overrides = {"device": None if device == "auto" else device, **(training_overrides or {})}
        config = TrainingConfig.from_budget(budget, **overrides)
        result = PipelineResult(location.name, names, folds)
        trainings = [(name, fold) for name in names for fold in folds_to_train(location, plans, name, names, folds)]
        if run_budget is not None:
            run_budget.parts = len(trainings)
            result.budget_choice = (f"{format_duration(total_budget)} for the whole run, {len(trainings)} fold "
                                    f"training(s) of about {format_duration(run_budget.nominal_fold_seconds())}; "
                                    f"{plans.time_budget.describe() if plans.time_budget else ''}")
        start = time.perf_counter()
        for index, (name, fold) in enumerate(trainings):
            if run_budget is not None:
                share = run_budget.next_fold_seconds(len(trainings) - index)
                config = TrainingConfig.from_budget(f"{max(share, 1.0):.3f}s", **overrides,
                                                    run_time_budget_seconds=total_budget)
            folder, trained = _train_or_continue(location, name, fold, config)
            result.fold_folders.append(folder)
            if trained:
                _count_training(result, folder)
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
        result.budget_seconds = total_budget
        return result


def _count_training(result: PipelineResult, folder: Path) -> None:
    """Add the fold's training iterations and their seconds, as its training_config.json records them for a fold
    trained from its start under a duration budget (a continued fold records none)."""
    from autounet.training.setup import stored_config

    stored = stored_config(folder)
    if stored is None or stored.budget_timing is None or not stored.budget_timing.spent_seconds:
        return
    result.training_seconds += stored.budget_timing.spent_seconds.get("training iterations", 0.0)
    result.iterations += stored.budget_timing.iterations_run


@contextlib.contextmanager
def _budget_shared_by(run_budget):
    """Restate a fold's too-small budget for the whole --budget that ``run`` shares among its folds."""
    from autounet.planning.time_budget import TimeBudgetTooSmallError as BudgetTooSmallError
    from autounet.planning.time_budget import format_at_least, format_duration

    try:
        yield
    except BudgetTooSmallError as error:
        if run_budget is None:
            raise
        spent = run_budget.total_seconds - run_budget.left()
        needed = spent + error.smallest_seconds * run_budget.parts + run_budget.closing_seconds()
        raise UserError(f"a {format_duration(run_budget.total_seconds)} budget for {run_budget.parts} fold "
                        f"training(s) is too small: {error.reason}; give --budget {format_at_least(needed)} or "
                        f"more.") from None
