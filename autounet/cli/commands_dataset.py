"""Commands that read the raw dataset: fingerprint."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, out


def fingerprint(dataset: DatasetArgument, workers: WorkersOption = None, root: RootOption = None) -> None:
    """Measure shapes, spacings, crop boxes and foreground intensities; write fingerprint.json.

    Example: autounet fingerprint Dataset004 --workers 2
    """
    from autounet.fingerprint import save_fingerprint
    from autounet.fingerprint.compute import compute_fingerprint

    location = dataset_location(dataset, root)
    start = time.perf_counter()
    fp = compute_fingerprint(location.raw, workers=workers)
    path = save_fingerprint(fp, location.preprocessed)
    table = Table(title=f"{fp.dataset_name}: {len(fp.cases)} cases, median spacing "
                        f"{', '.join(f'{s:g}' for s in fp.median_spacing)}")
    for column in ("channel", "mean", "std", "median", "p0.5", "p99.5"):
        table.add_column(column, justify="right")
    for index, stats in enumerate(fp.channels):
        table.add_row(f"{index} {fp.channel_names[index]}", *(f"{v:.4g}" for v in (
            stats.mean, stats.std, stats.median, stats.percentile_00_5, stats.percentile_99_5)))
    out.print(table)
    out.print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


def register(app: typer.Typer) -> None:
    app.command()(fingerprint)
