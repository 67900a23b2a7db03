"""Find the cases of a dataset on disk: ``imagesTr/CASE_XXXX.ext`` channel files and ``labelsTr/CASE.ext``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autounet.dataset.spec import DatasetSpec

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One case: its identifier, one image file per channel (in channel order), and its label file if any."""

    case_id: str
    image_files: tuple[Path, ...]
    label_file: Path | None = None


def split_channel_name(filename: str, ending: str) -> tuple[str, int] | None:
    """``("case", 0)`` for ``case_0000<ending>``; None when the name does not follow the convention."""
    if not filename.endswith(ending):
        return None
    match = _CHANNEL_FILE.match(filename[: -len(ending)])
    return (match["case"], int(match["channel"])) if match else None


def group_channel_files(folder: Path, ending: str) -> dict[str, dict[int, Path]]:
    """Map each case identifier in ``folder`` to its channel files ``{channel: path}``."""
    groups: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return groups
    for path in sorted(folder.iterdir()):
        parsed = split_channel_name(path.name, ending)
        if parsed:
            groups.setdefault(parsed[0], {})[parsed[1]] = path
    return groups


def _cases(folder: Path, spec: DatasetSpec, labels_folder: Path | None) -> list[Case]:
    cases = []
    for case_id, channels in group_channel_files(folder, spec.file_ending).items():
        files = tuple(channels[c] for c in sorted(channels))
        label = labels_folder / f"{case_id}{spec.file_ending}" if labels_folder else None
        cases.append(Case(case_id, files, label))
    return cases


def find_cases(dataset_folder: Path, spec: DatasetSpec) -> list[Case]:
    """The training cases (``imagesTr`` with labels in ``labelsTr``), sorted by identifier."""
    return _cases(dataset_folder / "imagesTr", spec, dataset_folder / "labelsTr")


def find_test_cases(dataset_folder: Path, spec: DatasetSpec) -> list[Case]:
    """The unlabelled test cases in ``imagesTs``, if any."""
    return _cases(dataset_folder / "imagesTs", spec, None)
