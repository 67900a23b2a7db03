"""The ``autounet run`` command: the whole pipeline in one go."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, out


def run(
    dataset: DatasetArgument,
    budget: Annotated[str, typer.Option("--budget", help="Training schedule per fold: quick (5 x 20 iterations, "
                                        "minutes), standard (250 x 250) or full (1000 x 250, nnU-Net's); or a "
                                        "duration for all folds' training and validation together (30m, 2h), "
                                        "which also chooses the configuration.")] = "quick",
    folds: Annotated[str, typer.Option("--folds", "-f", help="Cross-validation folds to train, comma-separated.")
                     ] = "0,1,2,3,4",
    configurations: Annotated[Optional[list[str]], typer.Option(
        "--configuration", "-c", help="Configuration(s) to train \\[default: 3d_fullres for 3D, 2d for 2D data].",
        show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cuda, mps or cpu.")] = "auto",
    gpu_memory: Annotated[Optional[float], typer.Option("--gpu-memory", min=0.0, show_default=False,
                                                        help="Plan for this much GPU memory (GB).")] = None,
    no_predict: Annotated[bool, typer.Option("--no-predict", help="Skip segmenting imagesTs/ at the end.")] = False,
    workers: WorkersOption = None,
    root: RootOption = None,
) -> None:
    """Run the whole pipeline: verify, fingerprint, plan, preprocess, train the folds, find-best, predict imagesTs.

    Example: autounet run examples/Dataset004_Hippocampus --budget 30m --folds 0
    """
    from autounet.pipeline import run_pipeline
    from autounet.training.budget import budget_seconds
    from autounet.training.config import parse_fold

    location = dataset_location(dataset, root)
    budget_seconds(budget)  # a clear error for a bad budget before any work
    fold_list = [parse_fold(part.strip()) for part in folds.split(",") if part.strip()]
    result = run_pipeline(location, budget=budget, folds=fold_list, configurations=configurations,
                          workers=workers, device=device, gpu_memory_gb=gpu_memory, predict_test=not no_predict)
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
    out.print(f"models: {location.results}")
    if result.predictions:
        out.print(f"predictions of {result.predicted_cases} test image(s): {result.predictions}")


def register(app: typer.Typer) -> None:
    app.command()(run)
