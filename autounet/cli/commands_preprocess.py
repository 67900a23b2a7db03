"""The preprocess command: crop, normalise, resample and cache every training case."""

from __future__ import annotations

import errno
from typing import Annotated, Optional

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, err, out, warn

ConfigurationOption = Annotated[Optional[list[str]], typer.Option(
    "--configuration", "-c", help="Configuration to preprocess (repeatable) \\[default: every one in plans.json].",
    show_default=False)]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Preprocess cases again even if already done.")]


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def preprocess(dataset: DatasetArgument, configuration: ConfigurationOption = None,
               workers: WorkersOption = None, overwrite: OverwriteOption = False, root: RootOption = None) -> None:
    """Crop, normalise and resample every training case for each planned configuration; cache them for training.

    Reads plans.json (from `autounet plan`) and writes preprocessed/DATASET/<data_identifier>/. Cases
    already done are skipped unless --overwrite. The default worker count fits the free memory.

    Example: autounet preprocess Dataset004 -c 3d_fullres --workers 2
    """
    from autounet.errors import UserError
    from autounet.preprocessing.dataset import preprocess_dataset
    from autounet.utils.logs import log_to

    location = dataset_location(dataset, root)
    with log_to(location.preprocessed / "preprocess.log"):
        try:
            summary = preprocess_dataset(location, configuration or None, workers, overwrite)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise UserError(f"{location.preprocessed}: the disk is full; free some space and run the command "
                                f"again (finished cases are kept).") from error
            raise
        table = Table(title=f"{summary.dataset_name}: preprocessed in {summary.seconds:.1f} s with "
                            f"{summary.workers} worker{'s' if summary.workers != 1 else ''}")
        for column in ("configuration", "cases", "written", "skipped", "disk"):
            table.add_column(column, justify="left" if column == "configuration" else "right")
        for c in summary.configurations:
            table.add_row(c.name, str(c.cases_total), str(c.cases_written), str(c.cases_skipped), _size(c.disk_bytes))
        out.print(table)
        for c in summary.configurations:
            out.print(f"{c.name}: {c.folder}", highlight=False, soft_wrap=True)
        if summary.failures:
            for failure in summary.failures:
                err.print(f"[bold red]failed:[/bold red] {failure.case_id}: {failure.message}", highlight=False,
                          soft_wrap=True)
            warn(f"{len(summary.failures)} case(s) failed; the others are done. Fix them and run the command again.")
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(preprocess)
