"""The result of an evaluation: per case and per class metrics, their means, and the files that hold them.

``summary.json`` stores undefined scores (NaN) as ``null`` so that it is valid JSON for any reader;
``load_summary`` turns them back into NaN.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autounet.evaluation.metrics import ClassMetrics, ClassSpec
from autounet.evaluation.jsonio import load_scores_json, save_scores_json
from autounet.utils.atomic import atomic_path

SUMMARY_FILE = "summary.json"
CSV_FILE = "metrics.csv"
AVERAGED_SCORES = ("dice", "iou", "hd95_mm", "nsd")
"""The scores that are averaged over cases (counts and volumes are reported per case)."""


@dataclass
class CaseResult:
    """One evaluated case: its files, voxel count (ignore label excluded) and metrics per class name."""

    case: str
    reference_file: str
    prediction_file: str
    spacing: tuple[float, float, float]
    voxels: int
    metrics: dict[str, ClassMetrics]


@dataclass
class ScoreStats:
    """Mean and standard deviation of one score over the cases where it is defined, and how many were not."""

    mean: float
    std: float
    defined: int
    undefined: int

    @classmethod
    def of(cls, values: list[float]) -> "ScoreStats":
        array = np.asarray(values, float)
        finite = array[~np.isnan(array)]
        if finite.size == 0:
            return cls(math.nan, math.nan, 0, int(array.size))
        return cls(float(finite.mean()), float(finite.std()), int(finite.size), int(array.size - finite.size))


@dataclass
class ClassSummary:
    """The scores of one class or region over all cases."""

    name: str
    values: list[int]
    dice: ScoreStats
    iou: ScoreStats
    hd95_mm: ScoreStats
    nsd: ScoreStats
    absent_in_both: int
    """Cases where neither reference nor prediction holds the class (Dice NaN, left out of the means)."""


@dataclass
class ForegroundMean:
    """The mean over classes of each class's mean score (NaN classes left out), as nnU-Net's foreground mean."""

    dice: float
    iou: float
    hd95_mm: float
    nsd: float


@dataclass
class EvaluationSummary:
    """Everything ``evaluate`` computed; stored as summary.json."""

    reference_dir: str
    prediction_dir: str
    file_ending: str
    surface: bool
    nsd_tolerance_mm: float
    ignore_label: int | None
    classes: dict[str, list[int]]
    per_class: list[ClassSummary]
    foreground_mean: ForegroundMean
    cases: list[CaseResult] = field(default_factory=list)

    def class_summary(self, name: str) -> ClassSummary:
        """The summary of the class or region called ``name``."""
        return next(c for c in self.per_class if c.name == name)


def mean_ignoring_nan(values: list[float]) -> float:
    """The mean of the values that are not NaN; NaN when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarise(cases: list[CaseResult], classes: ClassSpec, reference_dir: Path, prediction_dir: Path,
              file_ending: str, surface: bool, tolerance_mm: float,
              ignore_label: int | None) -> EvaluationSummary:
    """Per-class statistics and the foreground mean of per-case results."""
    per_class = []
    for name, values in classes.items():
        rows = [case.metrics[name] for case in cases]
        stats = {score: ScoreStats.of([getattr(r, score) for r in rows]) for score in AVERAGED_SCORES}
        absent = sum(1 for r in rows if r.reference_voxels == 0 and r.predicted_voxels == 0)
        per_class.append(ClassSummary(name, list(values), absent_in_both=absent, **stats))
    foreground = ForegroundMean(**{score: mean_ignoring_nan([getattr(c, score).mean for c in per_class])
                                   for score in AVERAGED_SCORES})
    return EvaluationSummary(str(reference_dir), str(prediction_dir), file_ending, surface, tolerance_mm,
                             ignore_label, {k: list(v) for k, v in classes.items()}, per_class, foreground,
                             sorted(cases, key=lambda c: c.case))


def metrics_table(summary: EvaluationSummary):
    """One row per case and class (a pandas DataFrame), as written to metrics.csv."""
    import pandas as pd

    rows = []
    for case in summary.cases:
        for name, metrics in case.metrics.items():
            row = {"case": case.case, "class": name, **dataclasses.asdict(metrics)}
            if not summary.surface:
                row.pop("hd95_mm"), row.pop("nsd")
            rows.append(row)
    return pd.DataFrame(rows)


def save_summary(summary: EvaluationSummary, output_dir: Path) -> tuple[Path, Path]:
    """Write summary.json and metrics.csv into ``output_dir`` atomically; return both paths."""
    output_dir = Path(output_dir)
    json_path, csv_path = output_dir / SUMMARY_FILE, output_dir / CSV_FILE
    save_scores_json(json_path, summary)
    with atomic_path(csv_path) as tmp:
        metrics_table(summary).to_csv(tmp, index=False, float_format="%.6g")
    return json_path, csv_path


def load_summary(path: Path) -> EvaluationSummary:
    """Read a summary.json written by :func:`save_summary`."""
    return load_scores_json(EvaluationSummary, path)
