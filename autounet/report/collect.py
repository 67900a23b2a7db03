"""Read what a dataset's stages left on disk, each piece optional: the fingerprint, the plans, every fold's
training log and config, the validation summaries and find-best's choice.

Only small files are read here (JSON and CSV); the images the overlays need are read in :mod:`.overlays`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset.verify import VERIFY_FILE, VerifyReport, load_verify_report
from autounet.dataset.spec import DatasetSpec, load_spec
from autounet.errors import UserError
from autounet.evaluation.choice import InferenceChoice, load_inference_choice
from autounet.evaluation.summary import EvaluationSummary, SUMMARY_FILE, load_summary
from autounet.fingerprint.model import FINGERPRINT_FILE, Fingerprint, load_fingerprint
from autounet.inference.model_folder import TRAINING_CONFIG_FILE, fold_folders, trained_configurations
from autounet.paths import DatasetLocation
from autounet.planning.plans import PLANS_FILE, Plans, load_plans

LOG_FILE = "log.csv"
VALIDATION_FOLDER = "validation"


@dataclass
class FoldRecord:
    """One fold folder: its training config (as stored), its epoch log and its validation summary, if there."""

    configuration: str
    fold: str
    folder: Path
    config: dict
    log: dict[str, list[float]] | None
    summary: EvaluationSummary | None
    finished: bool
    """Whether ``model_final.safetensors`` is there (training ended)."""

    @property
    def epochs_done(self) -> int:
        return len(self.log["epoch"]) if self.log else 0

    @property
    def wall_seconds(self) -> float:
        return float(sum(self.log.get("seconds", []))) if self.log else 0.0


@dataclass
class CaseRow:
    """One cross-validation case of a configuration: its Dice per class and where its files are."""

    case: str
    fold: str
    dice: dict[str, float]
    hd95: dict[str, float]
    nsd: dict[str, float]
    reference_volume: dict[str, float]
    reference_file: Path
    prediction_file: Path

    @property
    def mean_dice(self) -> float:
        finite = [v for v in self.dice.values() if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else math.nan


@dataclass
class ReportData:
    """Everything the report shows; every part may be missing."""

    location: DatasetLocation
    spec: DatasetSpec | None = None
    fingerprint: Fingerprint | None = None
    plans: Plans | None = None
    folds: dict[str, list[FoldRecord]] = field(default_factory=dict)
    choice: InferenceChoice | None = None
    problems: list[str] = field(default_factory=list)
    """Files that were there but could not be read, each as one sentence (shown in the report)."""
    raw: Path | None = None
    """The raw dataset folder the validation cases were read from (None when it is not on this machine)."""
    verification: VerifyReport | None = None
    """What verification found when the fingerprint was made (verify.json), if it was kept."""

    def cases(self, configuration: str) -> list[CaseRow]:
        """The validation cases of every fold of ``configuration`` that has a summary."""
        return [row for fold in self.folds.get(configuration, []) if fold.summary is not None
                for row in case_rows(fold)]

    @property
    def surface(self) -> bool:
        return any(f.summary is not None and f.summary.surface for folds in self.folds.values() for f in folds)


def read_log_csv(path: Path) -> dict[str, list[float]] | None:
    """The columns of a fold's ``log.csv`` as lists of floats; None when the file is absent or empty."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    columns: dict[str, list[float]] = {name: [] for name in rows[0]}
    for row in rows:
        for name in columns:
            try:
                columns[name].append(float(row.get(name) or "nan"))
            except ValueError:
                columns[name].append(math.nan)
    return columns


def case_rows(fold: FoldRecord) -> list[CaseRow]:
    """One row per validation case in the fold's summary.json."""
    summary = fold.summary
    ending = summary.file_ending.split(", ")[0] if summary.file_ending else ""
    rows = []
    for case in summary.cases:
        prediction = Path(case.prediction_file)
        if not prediction.is_file():  # the results folder was moved since it was written
            prediction = fold.folder / VALIDATION_FOLDER / f"{case.case}{ending}"
        rows.append(CaseRow(case.case, fold.fold,
                            {name: m.dice for name, m in case.metrics.items()},
                            {name: m.hd95_mm for name, m in case.metrics.items()},
                            {name: m.nsd for name, m in case.metrics.items()},
                            {name: m.reference_volume_mm3 for name, m in case.metrics.items()},
                            Path(case.reference_file), prediction))
    return rows


def _read_fold(configuration: str, folder: Path, data: ReportData) -> FoldRecord:
    config: dict = {}
    try:
        config = json.loads((folder / TRAINING_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        data.problems.append(f"{folder / TRAINING_CONFIG_FILE}: unreadable ({error}).")
    log = None
    try:
        log = read_log_csv(folder / LOG_FILE)
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        data.problems.append(f"{folder / LOG_FILE}: unreadable ({error}).")
    summary = None
    summary_path = folder / VALIDATION_FOLDER / SUMMARY_FILE
    if summary_path.is_file():
        try:
            summary = load_summary(summary_path)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            data.problems.append(f"{summary_path}: unreadable ({error}).")
    label = folder.name.removeprefix("fold_")
    return FoldRecord(configuration, label, folder, config, log, summary,
                      (folder / "model_final.safetensors").is_file())


def _optional(data: ReportData, path: Path, read):
    """``read()``, or None when ``path`` is absent; a problem noted when it is there but unreadable."""
    if not path.is_file():
        return None
    try:
        return read()
    except (UserError, OSError, ValueError, KeyError, TypeError) as error:
        data.problems.append(str(error) if isinstance(error, UserError) else f"{path}: unreadable ({error}).")
        return None


def collect(location: DatasetLocation) -> ReportData:
    """Read every piece of ``location`` the report shows; missing pieces stay None or empty."""
    data = ReportData(location)
    for folder in (location.preprocessed, location.raw):
        data.spec = _optional(data, folder / "dataset.json", lambda f=folder: load_spec(f))
        if data.spec is not None:
            break
    data.fingerprint = _optional(data, location.preprocessed / FINGERPRINT_FILE,
                                 lambda: load_fingerprint(location.preprocessed))
    data.verification = _optional(data, location.preprocessed / VERIFY_FILE,
                                  lambda: load_verify_report(location.preprocessed))
    data.plans = _optional(data, location.preprocessed / PLANS_FILE, lambda: load_plans(location.preprocessed))
    for configuration in trained_configurations(location.results):
        folders = fold_folders(location.results / configuration)
        data.folds[configuration] = [_read_fold(configuration, f, data) for f in folders]
        if data.plans is None and folders:
            data.plans = _optional(data, folders[0] / PLANS_FILE, lambda f=folders[0]: load_plans(f))
        if data.spec is None and folders:
            data.spec = _optional(data, folders[0] / "dataset.json", lambda f=folders[0]: load_spec(f))
    data.raw = _raw_folder(data)
    data.choice = _optional(data, location.results / "inference.json",
                            lambda: load_inference_choice(location.results))
    return data


def _raw_folder(data: ReportData) -> Path | None:
    """The raw dataset: the location's, else the one the validation references were read from (``run`` and
    ``train`` take a path to a dataset outside the data root, and ``report DatasetXXX`` then finds only the
    results)."""
    if (Path(data.location.raw) / "imagesTr").is_dir():
        return Path(data.location.raw)
    for folds in data.folds.values():
        for fold in folds:
            if fold.summary is not None and fold.summary.cases:
                candidate = Path(fold.summary.cases[0].reference_file).parent.parent
                if (candidate / "imagesTr").is_dir():
                    return candidate
    return None
