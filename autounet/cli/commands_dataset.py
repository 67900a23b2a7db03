"""Commands that read the raw dataset (verify, fingerprint) and check the set-up (doctor)."""

from __future__ import annotations

import time

import typer
from rich.table import Table
from rich.text import Text

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, out


def verify(dataset: DatasetArgument, workers: WorkersOption = None, root: RootOption = None) -> None:
    """Check a raw dataset for everything later stages would trip over; list every problem, one per line.

    Exits 1 when there are errors, 0 when there are only warnings (such as an empty label).
    Nothing in the dataset is modified.

    Example: autounet verify Dataset004 --workers 2
    """
    from autounet.dataset.verify import verify_dataset

    location = dataset_location(dataset, root)
    start = time.perf_counter()
    report = verify_dataset(location.raw, workers=workers)
    for style, kind, lines in (("bold red", "error", report.errors), ("yellow", "warning", report.warnings)):
        for line in lines:
            out.print(Text.assemble((f"{kind}: ", style), line), soft_wrap=True, highlight=False)
    verdict = Text("OK", "bold green") if report.ok else Text("FAILED", "bold red")
    out.print(Text.assemble(f"{location.raw}: {report.num_cases} training cases, {_count(report.errors, 'error')}, "
                            f"{_count(report.warnings, 'warning')} in {time.perf_counter() - start:.1f} s: ",
                            verdict), soft_wrap=True, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _count(lines: list[str], noun: str) -> str:
    return f"{len(lines)} {noun}{'' if len(lines) == 1 else 's'}"


def fingerprint(dataset: DatasetArgument, workers: WorkersOption = None, root: RootOption = None) -> None:
    """Measure shapes, spacings, crop boxes and foreground intensities; write fingerprint.json.

    Example: autounet fingerprint Dataset004 --workers 2
    """
    import numpy as np

    from autounet.fingerprint import save_fingerprint
    from autounet.fingerprint.compute import compute_fingerprint

    location = dataset_location(dataset, root)
    start = time.perf_counter()
    fp = compute_fingerprint(location.raw, workers=workers)
    path = save_fingerprint(fp, location.preprocessed)
    shape = "x".join(f"{s:g}" for s in np.median(fp.shapes_after_crop, axis=0))
    out.print(f"{fp.dataset_name}: {len(fp.cases)} cases, {'2D' if fp.is_2d else '3D'}, median spacing "
              f"{' x '.join(f'{s:g}' for s in fp.median_spacing)} (z, y, x), median shape after crop {shape}",
              soft_wrap=True, highlight=False, markup=False)
    table = Table(title="foreground intensities")
    for column in ("channel", "mean", "std", "median", "p0.5", "p99.5"):
        table.add_column(column, justify="right")
    for index, stats in enumerate(fp.channels):
        table.add_row(f"{index} {fp.channel_names[index]}", *(f"{v:.4g}" for v in (
            stats.mean, stats.std, stats.median, stats.percentile_00_5, stats.percentile_99_5)))
    out.print(table)
    out.print(f"wrote {path} in {time.perf_counter() - start:.1f} s", soft_wrap=True, highlight=False, markup=False)


def doctor(root: RootOption = None) -> None:
    """Show versions, compute devices, CPU cores, RAM, the data root folders and the datasets found there.

    Example: autounet doctor --root ~/autounet_data
    """
    from autounet.hardware import cpu_cores, detect_accelerator, ram_gb
    from autounet.paths import resolve_root

    data_root = resolve_root(root)
    versions = Table(title="software", show_header=False)
    for name, value in _versions():
        versions.add_row(name, value)
    out.print(versions)

    machine = Table(title="machine", show_header=False)
    try:
        device = detect_accelerator("auto")
        memory = (f", {device.total_memory_gb:.1f} GiB total, {device.free_memory_gb:.1f} GiB free"
                  if device.total_memory_gb is not None and device.free_memory_gb is not None else "")
        machine.add_row("device", f"{device.kind}: {device.name}"
                                  f"{f' x{device.count}' if device.count > 1 else ''}{memory}")
    except ImportError:
        machine.add_row("device", "unknown (torch is not installed)")
    total, available = ram_gb()
    machine.add_row("CPU cores", str(cpu_cores()))
    machine.add_row("RAM", f"{total:.1f} GiB total, {available:.1f} GiB available")
    out.print(machine)

    folders = Table(title=f"data root (from {data_root.source})", show_header=False)
    for name in ("raw", "preprocessed", "results"):
        path = getattr(data_root, name)
        folders.add_row(name, str(path), "" if path.is_dir() else "(not created yet)")
    out.print(folders)
    out.print(_datasets_table(data_root))


def _versions() -> list[tuple[str, str]]:
    import platform
    from importlib import metadata

    from autounet import __version__

    rows = [("autounet", __version__), ("python", f"{platform.python_version()} ({platform.python_implementation()})")]
    for package in ("torch", "numpy", "SimpleITK", "nibabel"):
        try:
            rows.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    try:
        import torch

        cuda = torch.version.cuda
        rows.append(("CUDA", f"{cuda} (cuDNN {torch.backends.cudnn.version()})" if cuda
                     else "none (CPU build of torch)"))
    except ImportError:
        rows.append(("CUDA", "unknown (torch is not installed)"))
    return rows


def _datasets_table(data_root) -> Table:
    from autounet.dataset.verify_layout import read_declared
    from autounet.fingerprint.model import FINGERPRINT_FILE
    from autounet.paths import list_raw_datasets

    table = Table(title=f"datasets in {data_root.raw}")
    for column in ("dataset", "training cases", "channels", "fingerprint"):
        table.add_column(column)
    names = list_raw_datasets(data_root)
    for name in names:
        declared, problems = read_declared(data_root.raw / name)
        cases = "?" if declared.num_training is None else str(declared.num_training)
        channels = ", ".join((declared.channel_names or {}).values())
        if problems:
            cases += f" ({len(problems)} problem(s) in dataset.json; run autounet verify)"
        has_fingerprint = (data_root.preprocessed / name / FINGERPRINT_FILE).is_file()
        table.add_row(name, cases, channels, "yes" if has_fingerprint else "no")
    if not names:
        table.add_row("(none)", "", "", "")
    return table


def register(app: typer.Typer) -> None:
    app.command()(verify)
    app.command()(fingerprint)
    app.command()(doctor)
