"""Evaluate a folder of predicted label maps against a folder of reference label maps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.errors import ImageReadError, UserError
from autounet.evaluation.metrics import ClassSpec, case_metrics, empty_class_metrics, normalise_classes
from autounet.evaluation.summary import CaseResult, EvaluationSummary, save_summary, summarise
from autounet.evaluation.surface import DEFAULT_NSD_TOLERANCE_MM
from autounet.io import SUPPORTED_ENDINGS, file_ending, read_label
from autounet.evaluation.runner import run_jobs


@dataclass(frozen=True)
class CaseJob:
    """One case to evaluate; ``classes`` None means every non-zero value found in either file."""

    case: str
    reference: Path
    prediction: Path
    classes: ClassSpec | None
    surface: bool
    tolerance_mm: float
    ignore_label: int | None


def label_files(folder: Path, file_ending_: str | None) -> dict[str, Path]:
    """Case name -> label file in ``folder``: files with ``file_ending_``, or with any supported image ending."""
    found = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        ending = file_ending_ if file_ending_ and path.name.endswith(file_ending_) else (
            None if file_ending_ else file_ending(path) or None)
        if ending:
            found[path.name[: -len(ending)]] = path
    return found


def evaluate_case(job: CaseJob) -> CaseResult:
    """Read one reference/prediction pair and compute its metrics (runs in a worker process)."""
    reference, geometry = read_label(job.reference)
    prediction, _ = read_label(job.prediction)
    if reference.shape != prediction.shape:
        raise ImageReadError(f"{job.prediction}: shape {prediction.shape} differs from the reference "
                             f"{job.reference} ({reference.shape}).")
    classes = job.classes
    if classes is None:
        present = np.union1d(np.unique(reference), np.unique(prediction))
        classes = {str(int(v)): [int(v)] for v in present if v != 0 and v != job.ignore_label}
    metrics = case_metrics(reference, prediction, classes, geometry.spacing, geometry.is_2d, job.surface,
                           job.tolerance_mm, job.ignore_label)
    voxels = int(reference.size if job.ignore_label is None else np.count_nonzero(reference != job.ignore_label))
    return CaseResult(job.case, str(job.reference), str(job.prediction),
                      tuple(float(s) for s in geometry.spacing), voxels, metrics)


def _check_folder(folder: Path, role: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: the {role} folder does not exist.")
    return folder


def _fill_absent_classes(results: list[CaseResult]) -> ClassSpec:
    """With classes found per case, give every case every class (absent ones as 'absent in both')."""
    values = sorted({int(name) for result in results for name in result.metrics}, key=int)
    classes = {str(v): [v] for v in values}
    for result in results:
        for name in classes:
            result.metrics.setdefault(name, empty_class_metrics(result.voxels))
        result.metrics = {name: result.metrics[name] for name in classes}
    return classes


def evaluate_folders(reference_dir: Path, prediction_dir: Path,
                     labels_or_regions: dict[str, int | list[int]] | None = None, file_ending: str | None = None,
                     surface: bool = False, workers: int | None = None, output_dir: Path | None = None,
                     tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
                     ignore_label: int | None = None) -> EvaluationSummary:
    """Score every prediction in ``prediction_dir`` against the same-named file in ``reference_dir``.

    ``labels_or_regions`` maps names to a label value or a list of values (a region); None scores every
    non-zero value found. Files are matched by name with ``file_ending`` (None: any supported image ending);
    files in the reference folder without a prediction are not scored (e.g. a fold's validation subset).
    Writes summary.json and metrics.csv into ``output_dir`` (default: ``prediction_dir``).

    Example:
        >>> summary = evaluate_folders(Path("labelsTr"), Path("pred"), {"a": 1, "b": 2}, surface=True)  # doctest: +SKIP
        >>> summary.foreground_mean.dice  # doctest: +SKIP
        0.89
    """
    reference_dir = _check_folder(reference_dir, "reference")
    prediction_dir = _check_folder(prediction_dir, "prediction")
    predictions = label_files(prediction_dir, file_ending)
    if not predictions:
        endings = file_ending or ", ".join(SUPPORTED_ENDINGS)
        raise UserError(f"{prediction_dir}: holds no label files ending in {endings}.")
    references = label_files(reference_dir, file_ending)
    missing = sorted(set(predictions) - set(references))
    if missing:
        raise UserError(f"{predictions[missing[0]]}: has no reference file of the same name in {reference_dir}"
                        + (f" (nor do {len(missing) - 1} other predictions)." if len(missing) > 1 else "."))
    output_dir = Path(output_dir) if output_dir is not None else prediction_dir
    if output_dir.resolve() == reference_dir.resolve():
        raise UserError(f"{reference_dir}: would receive summary.json and metrics.csv, but reference folders are "
                        "never written to; give another output folder.")
    classes = normalise_classes(labels_or_regions) if labels_or_regions is not None else None
    jobs = [CaseJob(case, references[case], predictions[case], classes, surface, tolerance_mm, ignore_label)
            for case in sorted(predictions)]
    results, failures = [], []
    for outcome in run_jobs(evaluate_case, jobs, workers, "evaluate"):
        if outcome.ok:
            results.append(outcome.result)
        elif isinstance(outcome.error, UserError):
            failures.append(outcome.error)
        else:
            raise outcome.error
    if failures:
        more = f" ({len(failures) - 1} more files failed too)" if len(failures) > 1 else ""
        raise type(failures[0])(f"{failures[0]}{more}")
    if classes is None:
        classes = _fill_absent_classes(results)
    ending = file_ending or (file_ending_of(predictions))
    summary = summarise(results, classes, reference_dir, prediction_dir, ending, surface, tolerance_mm,
                        ignore_label)
    save_summary(summary, output_dir)
    return summary


def file_ending_of(files: dict[str, Path]) -> str:
    """The image ending shared by ``files`` (comma-separated when mixed)."""
    return ", ".join(sorted({file_ending(p) for p in files.values()}))
