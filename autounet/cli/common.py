"""Options and output helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from autounet.paths import DatasetLocation, locate_dataset, resolve_root

out = Console()
"""Results and summaries (stdout)."""
err = Console(stderr=True)
"""Warnings and errors (stderr)."""

RootOption = Annotated[Optional[Path], typer.Option(
    "--root", help="Data root holding raw/, preprocessed/ and results/ \\[default: $AUTOUNET_HOME, nnU-Net's "
                   "variables, or ~/autounet_data].", show_default=False)]
DatasetArgument = Annotated[str, typer.Argument(
    help="Dataset: Dataset004, 4, 004, Dataset004_Hippocampus, or a path to its folder.", show_default=False)]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", "-w", min=1, help="Worker processes \\[default: the CPU cores].", show_default=False)]


def dataset_location(dataset: str, root: Path | None) -> DatasetLocation:
    """Resolve the dataset argument under the data root given by ``--root`` or the environment."""
    return locate_dataset(dataset, resolve_root(root))


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
