"""``write_report``: the dataset's ``results/<dataset>/report.html``, one self-contained file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from autounet import __version__
from autounet.errors import MissingArtifactError
from autounet.paths import DatasetLocation
from autounet.report import sections
from autounet.report.collect import collect
from autounet.report.html import page
from autounet.utils.atomic import write_bytes

REPORT_FILE = "report.html"


def render_report(location: DatasetLocation) -> str:
    """The report of ``location`` as HTML text.

    Raises :class:`MissingArtifactError` when no stage has written anything for the dataset yet.
    """
    data = collect(location)
    if data.fingerprint is None and data.plans is None and not data.folds:
        raise MissingArtifactError(f"{location.preprocessed}: holds no fingerprint or plans and {location.results} "
                                   f"no trained fold; run `autounet run {location.name}` (or its stages) first.")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"autounet {__version__}, {stamp}; results in {location.results}"
    return page(f"{location.name}: what was learned", subtitle, [
        ("dataset", "Dataset at a glance", sections.dataset_section(data)),
        ("plans", "Plans", sections.plans_section(data)),
        ("training", "Training", sections.training_section(data)),
        ("cross-validation", "Cross-validation", sections.cross_validation_section(data)),
        ("overlays", "Validation cases", sections.overlays_section(data)),
    ])


def write_report(location: DatasetLocation) -> Path:
    """Write ``results/<dataset>/report.html`` atomically and return its path.

    Example:
        >>> path = write_report(locate_dataset("4", resolve_root()))  # doctest: +SKIP
        >>> path.name
        'report.html'
    """
    text = render_report(location)
    path = Path(location.results) / REPORT_FILE
    write_bytes(path, text.encode("utf-8"))
    return path
