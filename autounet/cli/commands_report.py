"""The report command: one self-contained HTML page of what a dataset's run learned."""

from __future__ import annotations

import time

import typer

from autounet.cli.common import DatasetArgument, RootOption, dataset_location, out


def report(dataset: DatasetArgument, root: RootOption = None) -> None:
    """Write results/<dataset>/report.html: dataset, plans, training curves, cross-validation and overlays.

    One file with its images inside; it opens from disk in any browser, with no network access.

    Example: autounet report Dataset004
    """
    from autounet.report import write_report

    start = time.perf_counter()
    path = write_report(dataset_location(dataset, root))
    out.print(f"wrote {path} in {time.perf_counter() - start:.1f} s", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(report)
