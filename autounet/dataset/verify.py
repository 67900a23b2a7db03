"""Check a raw dataset for everything a later stage would trip over, and report every problem.

Example:
    >>> report = verify_dataset(Path("raw/Dataset004_Hippocampus"), workers=2)  # doctest: +SKIP
    >>> report.ok, report.num_cases
    (True, 260)
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset.verify_case import CaseCheck, CaseJob, check_case, relative_name
from autounet.dataset.verify_layout import CaseFiles, Declared, find_layout, read_declared
from autounet.utils.parallel import default_workers, map_in_processes


@dataclass
class VerifyReport:
    """Every problem found, one line each, starting with the file's path relative to the dataset folder.

    Errors would make a later stage fail or learn from wrong data; warnings
    (an empty label, a constant image) deserve a look but do not fail.
    """

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    num_cases: int = 0
    """Training cases found in imagesTr."""

    @property
    def ok(self) -> bool:
        return not self.errors


VERIFY_FILE = "verify.json"
"""What verification found when the fingerprint was made (beside fingerprint.json; the report shows it)."""


def save_verify_report(report: VerifyReport, folder: Path) -> Path:
    """Write ``report`` to ``folder/verify.json`` (atomically)."""
    from autounet.utils.atomic import write_json
    from autounet.utils.serde import to_json_value

    path = Path(folder) / VERIFY_FILE
    write_json(path, to_json_value(report))
    return path


def load_verify_report(folder: Path) -> VerifyReport | None:
    """The report :func:`save_verify_report` wrote in ``folder``; None where there is none."""
    import json

    from autounet.utils.serde import load_dataclass

    path = Path(folder) / VERIFY_FILE
    return load_dataclass(VerifyReport, json.loads(path.read_text())) if path.is_file() else None


def verify_dataset(folder: Path, workers: int | None = None) -> VerifyReport:
    """Check the raw dataset in ``folder`` (nnU-Net v2 format) without modifying anything.

    Reads dataset.json, the file names in imagesTr/, labelsTr/ and imagesTs/,
    then every case's files in ``workers`` processes (default: the CPU cores).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return VerifyReport(errors=[f"{folder}: no such dataset folder."])
    declared, errors = read_declared(folder)
    layout = find_layout(folder, declared)
    report = VerifyReport(errors + layout.errors, list(layout.warnings), len(layout.training))
    jobs = [_job(folder, case, declared) for case in layout.training + layout.test]
    checks: list[CaseCheck] = []
    died: list[str] = []
    for outcome in map_in_processes(check_case, jobs, workers or default_workers(), "verify"):
        if outcome.ok:
            checks.append(outcome.result)
        elif isinstance(outcome.error, BrokenProcessPool):
            died.append(outcome.item.case_id)
        else:  # check_case reports bad files itself; anything else is worth showing as it is
            report.errors.append(f"{relative_name(folder, outcome.item.image_files[0])}: checking case "
                                 f"'{outcome.item.case_id}' failed ({type(outcome.error).__name__}: {outcome.error}).")
    if died:
        names = ", ".join(died[:5]) + (", ..." if len(died) > 5 else "")
        report.errors.append(f"{folder}: a worker process died (out of memory?) before checking {len(died)} "
                             f"case(s): {names}; try fewer workers.")
    checks.sort(key=lambda check: check.first_file or check.case_id)
    for check in checks:
        report.errors.extend(check.errors)
        report.warnings.extend(check.warnings)
    report.errors.extend(dimension_mix_errors(checks))
    return report


def _job(folder: Path, case: CaseFiles, declared: Declared) -> CaseJob:
    return CaseJob(folder, case.case_id, tuple(case.image_files), case.label_file,
                   declared.num_channels if case.complete else None, declared.label_values, declared.ignore_label)


def dimension_mix_errors(checks: list[CaseCheck]) -> list[str]:
    """One line per case whose dimensionality (2D or 3D) differs from that of most cases."""
    counts = Counter(check.is_2d for check in checks if check.is_2d is not None)
    if len(counts) < 2:
        return []
    majority = counts.most_common(1)[0][0]
    kind = {True: "2D", False: "3D"}
    return [f"{check.first_file}: is {kind[check.is_2d]} while {counts[majority]} of {sum(counts.values())} cases "
            f"are {kind[majority]}; a dataset must be all 2D or all 3D."
            for check in checks if check.is_2d is not None and check.is_2d != majority]
