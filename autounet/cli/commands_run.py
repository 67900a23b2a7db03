"""The ``autounet run`` command: the whole pipeline in one go."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, TrackerOption, WorkersOption, dataset_location, out


def run(
    dataset: DatasetArgument,
    budget: Annotated[str, typer.Option("--budget", help="Training schedule per fold: quick (5 x 20 iterations, "
                                        "minutes), standard (250 x 250) or full (1000 x 250, nnU-Net's); or a "
                                        "duration for the whole run up to the report (planning, preprocessing, "
                                        "every fold's training and validation; 30m, 2h), which also chooses the "
                                        "configuration.")] = "quick",
    folds: Annotated[str, typer.Option("--folds", "-f", help="Cross-validation folds to train, comma-separated.")
                     ] = "0,1,2,3,4",
    configurations: Annotated[Optional[list[str]], typer.Option(
        "--configuration", "-c", help="Configuration(s) to train \\[default: 3d_fullres for 3D, 2d for 2D data].",
        show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cuda, mps or cpu.")] = "auto",
    gpu_memory: Annotated[Optional[float], typer.Option("--gpu-memory", min=0.0, show_default=False,
                                                        help="Plan for this much GPU memory (GB).")] = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", help="Network preset: default, resenc-m, resenc-l or resenc-xl (see autounet plan --help).",
        show_default=False)] = None,
    no_predict: Annotated[bool, typer.Option("--no-predict", help="Skip segmenting imagesTs/ at the end.")] = False,
    tracker: TrackerOption = None,
    workers: WorkersOption = None,
    root: RootOption = None,
) -> None:
    """Run the whole pipeline: verify, fingerprint, plan, preprocess, train the folds, find-best, predict imagesTs,
    and write the HTML report.

    Example: autounet run examples/Dataset004_Hippocampus --budget 30m --folds 0
    """
    from autounet.pipeline import run_pipeline
    from autounet.planning.time_budget import time_budget_seconds as budget_seconds
    from autounet.training.config import parse_fold
    from autounet.utils.logs import log_to

    location = dataset_location(dataset, root)
    budget_seconds(budget)  # a clear error for a bad budget before any work
    fold_list = [parse_fold(part.strip()) for part in folds.split(",") if part.strip()]
    with log_to(location.results / "run.log"):
        result = run_pipeline(location, budget=budget, folds=fold_list, configurations=configurations,
                              workers=workers, device=device, gpu_memory_gb=gpu_memory, predict_test=not no_predict,
                              training_overrides={"tracker": tracker} if tracker else None, preset_name=preset)
        if result.budget_choice:
            out.print(result.budget_choice, highlight=False)
        table = Table(title=f"{result.dataset}: cross-validation ({', '.join(str(f) for f in result.folds)})")
        table.add_column("chosen")
        table.add_column("foreground Dice", justify="right")
        for name in result.class_dice:
            table.add_column(name, justify="right")
        table.add_row(" + ".join(result.chosen), f"{result.cross_validation_dice:.4f}",
                      *(f"{v:.4f}" for v in result.class_dice.values()))
        out.print(table)
        out.print(f"postprocessing: {result.postprocessing}")
        out.print("time: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in result.seconds.items()))
        if result.budget_seconds:
            out.print(budget_line(result), highlight=False)
        for line in closing_lines(result, location, dataset, budget, fold_list, root):
            out.print(line, highlight=False, soft_wrap=True)


def budget_line(result) -> str:
    """How the run kept to its duration budget: the whole run's time and the share that trained."""
    from autounet.planning.time_budget import format_duration

    budget = result.budget_seconds
    total = sum(seconds for step, seconds in result.seconds.items() if step != "predict imagesTs")
    trained = (f"; training iterations {result.training_seconds:.0f} s ({100 * result.training_seconds / budget:.0f} "
               f"% of the budget, {result.iterations} iterations)" if result.training_seconds else "")
    after = " (segmenting imagesTs/ came after it)" if "predict imagesTs" in result.seconds else ""
    return (f"budget {format_duration(budget)}: the run took {format_duration(total)} ({100 * total / budget:.0f} "
            f"%){after}{trained}")


def closing_lines(result, location, dataset: str, budget: str, folds: list, root=None) -> list[str]:
    """Where the run's outputs are and the commands a user would type next, in plain words.

    ``dataset`` and ``root`` are as the user gave them, so the suggested commands find the same data.
    """
    where = f" --root {root}" if root else ""
    lines = [f"report: {result.report}"] if result.report else []
    lines.append(f"models: {location.results}")
    lines += [f"training curves: {folder / 'progress.png'}" for folder in result.fold_folders
              if (folder / "progress.png").is_file()]
    if result.predictions:
        lines.append(f"segmentations of the {result.predicted_cases} image(s) in imagesTs/: {result.predictions}")
    lines += ["next:",
              f"  segment your own images:  autounet predict -i YOUR_IMAGES/ -o OUTPUT/ -d {location.name}{where}"]
    if len(folds) < 5:
        # A duration is shared by the folds, so five folds need five times one fold's share.
        lines.append(f"  train all five folds:     autounet run {dataset} --budget "
                     f"{_scaled(budget, 5 / max(1, len(folds)))} --folds 0,1,2,3,4{where}")
    lines.append(f"  train longer:             autounet run {dataset} --budget {_scaled(budget, 10)}"
                 + (f" --folds {','.join(str(f) for f in folds)}" if len(folds) < 5 else "") + where)
    return lines


def _scaled(budget: str, factor: float) -> str:
    """A duration ``factor`` times ``budget``; a schedule preset as it is, or the next longer one when
    ``factor`` asks for much more time."""
    from autounet.planning.time_budget import format_duration, time_budget_seconds as budget_seconds

    seconds = budget_seconds(budget)
    if seconds is not None:
        return format_duration(seconds * factor).removesuffix("00s")  # 10m, not 10m00s
    return {"quick": "30m", "standard": "full"}.get(budget, budget) if factor >= 10 else budget


def register(app: typer.Typer) -> None:
    app.command()(run)
