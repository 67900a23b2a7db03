"""Options and output helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import logging

import typer

from autounet.paths import DatasetLocation, locate_dataset, resolve_root
from autounet.utils.logs import LoggedConsole

out = LoggedConsole()
"""Results and summaries (stdout; copied to the open log files)."""
err = LoggedConsole(stderr=True, level=logging.WARNING)
"""Warnings and errors (stderr; copied to the open log files)."""

RootOption = Annotated[Optional[Path], typer.Option(
    "--root", help="Data root holding raw/, preprocessed/ and results/ \\[default: $AUTOUNET_HOME, nnU-Net's "
                   "variables, or ~/autounet_data].", show_default=False)]
DatasetArgument = Annotated[str, typer.Argument(
    help="Dataset: Dataset004, 4, 004, Dataset004_Hippocampus, or a path to its folder.", show_default=False)]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", "-w", min=1, help="Worker processes \\[default: the CPU cores].", show_default=False)]

TrackerOption = Annotated[Optional[str], typer.Option(
    "--tracker", help="Also send each epoch's metrics to tensorboard or mlflow (optional packages: pip install "
                      "'autounet[tracking]') \\[default: none].", show_default=False)]


def dataset_location(dataset: str, root: Path | None) -> DatasetLocation:
    """Resolve the dataset argument under the data root given by ``--root`` or the environment."""
    return locate_dataset(dataset, resolve_root(root))


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
