"""Preprocess a whole dataset: every training case, for every planned configuration, into a CaseStore.

Each case is read once and written for every configuration that still needs it. Runs are
idempotent (complete cases are skipped) and crash-safe (every file is written atomically and a
case's properties go last, so a run killed at any moment and started again ends with the same
files as an uninterrupted run).
"""

from __future__ import annotations

import errno
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset import Case, find_cases, load_spec
from autounet.errors import MissingArtifactError, UserError
from autounet.fingerprint.compute import raw_digest
from autounet.fingerprint.model import FINGERPRINT_FILE, load_fingerprint
from autounet.io import read_image, read_label
from autounet.paths import DatasetLocation
from autounet.planning.plans import ConfigurationPlan, Plans, load_dataset_plans, plans_path
from autounet.preprocessing.memory import case_peak_bytes, choose_workers
from autounet.preprocessing.pipeline import class_locations, preprocess_case, target_spacing_for
from autounet.preprocessing.resample import new_shape_for
from autounet.preprocessing.runner import run_bounded
from autounet.preprocessing.settings import prepare_folder
from autounet.preprocessing.store import CaseStore
from autounet.utils.atomic import remove_abandoned_temporaries, write_bytes
from autounet.utils.locks import exclusive
from autounet.utils.progress import console


@dataclass
class CaseTask:
    """One case and the configurations (with their output folders) it still has to be written for."""

    case: Case
    plans: Plans
    configurations: list[ConfigurationPlan]
    folders: list[Path]
    foreground_labels: list[int]


@dataclass
class CaseFailure:
    """A case that could not be preprocessed, and why."""

    case_id: str
    message: str


@dataclass
class ConfigurationSummary:
    """What a run did for one configuration's folder."""

    name: str
    data_identifier: str
    folder: str
    cases_total: int
    cases_written: int = 0
    cases_skipped: int = 0
    disk_bytes: int = 0


@dataclass
class PreprocessSummary:
    """The outcome of :func:`preprocess_dataset`."""

    dataset_name: str
    configurations: list[ConfigurationSummary]
    failures: list[CaseFailure] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def preprocess_task(task: CaseTask) -> list[str]:
    """Read one case and write it for each configuration of ``task``; returns those configurations' names."""
    image, geometry = read_image(task.case.image_files)
    raw_files = [*task.case.image_files, *([task.case.label_file] if task.case.label_file is not None else [])]
    labels = None
    if task.case.label_file is not None:
        labels, _ = read_label(task.case.label_file)
    for config, folder in zip(task.configurations, task.folders):
        data, seg, properties = preprocess_case(image, geometry, labels, task.plans, config, task.case.case_id)
        locations = class_locations(seg, task.foreground_labels, task.case.case_id) if seg is not None else {}
        CaseStore(folder).save(task.case.case_id, data, seg, properties, locations, sources=raw_files)
        del data, seg
    return [c.name for c in task.configurations]


def _load_plans(location: DatasetLocation) -> Plans:
    if not plans_path(location.preprocessed).is_file():
        raise MissingArtifactError(f"{plans_path(location.preprocessed)}: not found; run `autounet plan "
                                   f"{location.name}` first.")
    return load_dataset_plans(location.preprocessed)


def _distinct_folders(plans: Plans, names: list[str]) -> dict[str, ConfigurationPlan]:
    """One configuration per data identifier (configurations that share a folder share its cases)."""
    chosen: dict[str, ConfigurationPlan] = {}
    for name in names:
        config = plans.configuration(name)
        chosen.setdefault(config.data_identifier, config)
    return chosen


def _peak_bytes(location: DatasetLocation, configs: list[ConfigurationPlan], channels: int) -> int | None:
    """The largest estimated per-case peak memory over the fingerprinted cases, if a fingerprint exists."""
    if not (location.preprocessed / FINGERPRINT_FILE).is_file():
        return None
    fingerprint = load_fingerprint(location.preprocessed)
    peaks = [case_peak_bytes(c.shape, c.shape_after_crop,
                             new_shape_for(c.shape_after_crop, c.spacing, target_spacing_for(config, c.spacing)),
                             channels)
             for c in fingerprint.cases for config in configs]
    return max(peaks) if peaks else None


def _failure_message(error: BaseException) -> str:
    if isinstance(error, UserError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def preprocess_dataset(location: DatasetLocation, configurations: list[str] | None = None,
                       workers: int | None = None, overwrite: bool = False) -> PreprocessSummary:
    """Preprocess every training case of ``location`` for the named configurations (default: all planned).

    Cases go to ``location.preprocessed / <data_identifier>`` through :class:`CaseStore`;
    dataset.json is copied beside plans.json. Cases that fail are listed in the summary and the
    others are still done. A full disk stops the run with a :class:`UserError` (no partial case
    is left behind). The dataset's preprocessed folder is locked meanwhile (see ``utils/locks.py``).

    Example:
        >>> summary = preprocess_dataset(locate_dataset("4", resolve_root(None)), ["3d_fullres"])  # doctest: +SKIP
    """
    with exclusive(location.preprocessed, f"autounet preprocess {location.name}"):
        return _preprocess_dataset(location, configurations, workers, overwrite)


def _preprocess_dataset(location: DatasetLocation, configurations: list[str] | None,
                        workers: int | None, overwrite: bool) -> PreprocessSummary:
    start = time.perf_counter()
    plans = _load_plans(location)
    if not (location.raw / "dataset.json").is_file():
        raise MissingArtifactError(f"{location.raw}: the raw dataset is not there; preprocessing reads it.")
    spec = load_spec(location.raw)
    names = list(configurations) if configurations else list(plans.configurations)
    folders = _distinct_folders(plans, names)
    cases = find_cases(location.raw, spec)
    if not cases:
        raise UserError(f"{location.raw / 'imagesTr'}: no training cases found.")
    notes: list[str] = []
    if plans.raw_digest and plans.raw_digest != raw_digest(location.raw):
        notes.append(f"the raw data changed since {plans_path(location.preprocessed)} was made; consider "
                     f"re-running `autounet fingerprint` and `autounet plan`.")
    remove_abandoned_temporaries(location.preprocessed)  # of dataset.json, say, from a killed run
    write_bytes(location.preprocessed / "dataset.json", (location.raw / "dataset.json").read_bytes())

    summaries: dict[str, ConfigurationSummary] = {}
    stores: dict[str, CaseStore] = {}
    for identifier, config in folders.items():
        store = CaseStore(location.preprocessed / identifier)
        note = prepare_folder(store, plans, config, overwrite)
        if note:
            notes.append(note)
        stores[identifier] = store
        summaries[identifier] = ConfigurationSummary(config.name, identifier, str(store.folder), len(cases))

    tasks = []
    for case in cases:
        todo = [i for i in folders if not stores[i].is_done(case.case_id)]
        for identifier in folders:
            if identifier not in todo:
                summaries[identifier].cases_skipped += 1
        if todo:
            tasks.append(CaseTask(case, plans, [folders[i] for i in todo], [stores[i].folder for i in todo],
                                  spec.foreground_labels))
    choice = choose_workers(_peak_bytes(location, list(folders.values()), spec.num_channels), len(tasks), workers)
    if choice.peak_case_gb is not None and choice.workers * choice.peak_case_gb > choice.available_gb:
        notes.append(f"{choice.workers} workers may need {choice.workers * choice.peak_case_gb:.1f} GiB but only "
                     f"{choice.available_gb:.1f} GiB are available; use fewer --workers if the run is killed.")
    elif choice.limited_by_memory:
        notes.append(f"using {choice.workers} workers (of {choice.cores} cores): the largest case needs about "
                     f"{choice.peak_case_gb:.1f} GiB and {choice.available_gb:.1f} GiB are available.")
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)

    failures = _run(tasks, choice.workers, summaries)
    for identifier, store in stores.items():
        summaries[identifier].disk_bytes = store.disk_bytes()
    return PreprocessSummary(plans.dataset_name or location.name, list(summaries.values()), failures,
                             time.perf_counter() - start, choice.workers, notes)


def _run(tasks: list[CaseTask], workers: int, summaries: dict[str, ConfigurationSummary]) -> list[CaseFailure]:
    """Run the tasks; count written cases; collect failures; stop at once on a full disk or a dead worker."""
    failures: list[CaseFailure] = []
    outcomes = run_bounded(preprocess_task, tasks, workers, "preprocess")
    for outcome in outcomes:
        task: CaseTask = outcome.item
        if outcome.ok:
            for config in task.configurations:
                summaries[config.data_identifier].cases_written += 1
            continue
        error = outcome.error
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            outcomes.close()
            raise UserError(f"{task.folders[0]}: the disk is full (while writing case '{task.case.case_id}'); "
                            f"free some space and run the command again: finished cases are kept, the "
                            f"unfinished one was removed.") from error
        if isinstance(error, BrokenProcessPool):
            outcomes.close()
            raise UserError(f"a preprocessing worker died (most likely killed for lack of memory) while case "
                            f"'{task.case.case_id}' or another was running; run again with fewer --workers "
                            f"(finished cases are kept).") from error
        failures.append(CaseFailure(task.case.case_id, _failure_message(error)))
    return failures
