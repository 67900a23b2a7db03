"""Checks that need no image reading: dataset.json, file names and which files each case has.

Every problem becomes one line that starts with the offending file's path
relative to the dataset folder. What dataset.json declares is read leniently
(:class:`Declared`), so one broken key does not hide the problems elsewhere.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset.cases import split_channel_name
from autounet.dataset.spec import REQUIRED_KEYS, _problems
from autounet.io import SUPPORTED_ENDINGS, file_ending

DATASET_JSON = "dataset.json"


@dataclass
class Declared:
    """What dataset.json declares, each part None when it is missing or unusable."""

    file_ending: str | None = None
    channel_names: dict[int, str] | None = None
    label_values: frozenset[int] | None = None
    ignore_label: int | None = None
    num_training: int | None = None

    @property
    def num_channels(self) -> int | None:
        return len(self.channel_names) if self.channel_names is not None else None


@dataclass
class CaseFiles:
    """The files of one case as found on disk (channel files in channel order)."""

    case_id: str
    image_files: list[Path]
    label_file: Path | None
    complete: bool
    """True when no channel file is missing (so the channel count can be checked)."""


@dataclass
class Layout:
    """The cases found in imagesTr and imagesTs, and the problems met while finding them."""

    training: list[CaseFiles] = field(default_factory=list)
    test: list[CaseFiles] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_declared(folder: Path) -> tuple[Declared, list[str]]:
    """What ``folder/dataset.json`` declares, and one error line per problem with it."""
    path = folder / DATASET_JSON
    if not path.is_file():
        return Declared(), [f"{DATASET_JSON}: not found; a dataset folder needs a dataset.json "
                            f"(keys: {', '.join(REQUIRED_KEYS)})."]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return Declared(), [f"{DATASET_JSON}: is not valid JSON ({error})."]
    if not isinstance(data, dict):
        return Declared(), [f"{DATASET_JSON}: must hold a JSON object, not {type(data).__name__}."]
    errors = [f"{DATASET_JSON}: {problem}." for problem in _problems(data)]
    if any(key not in data for key in REQUIRED_KEYS):
        # _problems stops at missing keys; check the keys that are present as well.
        errors += [f"{DATASET_JSON}: {problem}." for problem in _problems({**_PLACEHOLDERS, **data})
                   if f"{DATASET_JSON}: {problem}." not in errors]
    return _lenient(data), errors


# Valid stand-ins for missing keys, so the keys that are present still get checked.
_PLACEHOLDERS = {"channel_names": {"0": "x"}, "labels": {"background": 0}, "numTraining": 0, "file_ending": ".x"}


def _lenient(data: dict) -> Declared:
    declared = Declared()
    ending = data.get("file_ending")
    if isinstance(ending, str) and ending.startswith("."):
        declared.file_ending = ending
    names = data.get("channel_names")
    if isinstance(names, dict) and names and sorted(names) == [str(i) for i in range(len(names))]:
        declared.channel_names = {int(k): str(v) for k, v in names.items()}
    labels = data.get("labels")
    if isinstance(labels, dict):
        values: set[int] = set()
        usable = True
        for value in labels.values():
            items = value if isinstance(value, list) else [value]
            usable &= all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items)
            values.update(v for v in items if isinstance(v, int))
        if usable:
            declared.label_values = frozenset(values)
            ignore = labels.get("ignore")
            declared.ignore_label = ignore if isinstance(ignore, int) else None
    count = data.get("numTraining")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        declared.num_training = count
    return declared


def infer_file_ending(folder: Path) -> str | None:
    """The most common supported file ending in imagesTr, for when dataset.json does not give a usable one."""
    endings = Counter(file_ending(p) for p in _entries(folder / "imagesTr"))
    endings.pop("", None)
    return endings.most_common(1)[0][0] if endings else None


def find_layout(folder: Path, declared: Declared) -> Layout:
    """Group the files of imagesTr, labelsTr and imagesTs into cases; report names, endings and gaps."""
    layout = Layout()
    ending = declared.file_ending or infer_file_ending(folder)
    for sub in ("imagesTr", "labelsTr"):
        if not (folder / sub).is_dir():
            layout.errors.append(f"{sub}: folder not found; the training cases belong in imagesTr/ and labelsTr/.")
    if ending is None:
        if (folder / "imagesTr").is_dir():
            layout.errors.append(f"imagesTr: holds no files with a supported ending ({', '.join(SUPPORTED_ENDINGS)}).")
        return layout
    source = "of dataset.json" if declared.file_ending else "used by most files"
    training = _channel_groups(folder, "imagesTr", ending, source, declared, layout.errors)
    labels = _label_files(folder, ending, source, layout.errors)
    layout.training = _cases(folder, "imagesTr", training, ending, declared, labels, layout.errors)
    for case_id in sorted(set(labels) - set(training)):
        layout.errors.append(f"labelsTr/{labels[case_id].name}: label without image "
                             f"(no imagesTr/{case_id}_0000{ending}).")
    if (folder / "imagesTs").is_dir():
        test = _channel_groups(folder, "imagesTs", ending, source, declared, layout.errors)
        layout.test = _cases(folder, "imagesTs", test, ending, declared, None, layout.errors)
    if (folder / "imagesTr").is_dir() and not training:
        layout.errors.append(f"imagesTr: holds no case files named CASE_XXXX{ending}.")
    if declared.num_training is not None and training and declared.num_training != len(training):
        layout.errors.append(f"{DATASET_JSON}: numTraining is {declared.num_training} but imagesTr holds "
                             f"{len(training)} cases.")
    return layout


def _entries(folder: Path) -> list[Path]:
    """The files of ``folder``, sorted; hidden files (``.DS_Store``, editor backups) are not dataset files."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _wrong_ending(sub: str, path: Path, ending: str, source: str) -> str:
    actual = file_ending(path) or "".join(path.suffixes) or "none"
    return f"{sub}/{path.name}: file ending '{actual}' differs from the file_ending '{ending}' {source}."


def _channel_groups(folder: Path, sub: str, ending: str, source: str, declared: Declared,
                    errors: list[str]) -> dict[str, dict[int, Path]]:
    groups: dict[str, dict[int, Path]] = {}
    for path in _entries(folder / sub):
        if not path.name.endswith(ending):
            errors.append(_wrong_ending(sub, path, ending, source))
            continue
        parsed = split_channel_name(path.name, ending)
        if parsed is None:
            errors.append(f"{sub}/{path.name}: name does not follow CASE_XXXX{ending} "
                          f"(case identifier, '_', 4-digit channel number).")
            continue
        case_id, channel = parsed
        if declared.num_channels is not None and channel >= declared.num_channels:
            errors.append(f"{sub}/{path.name}: channel {channel:04d}, but dataset.json declares only "
                          f"{declared.num_channels} channel(s) (channel_names).")
            continue
        groups.setdefault(case_id, {})[channel] = path
    return groups


def _label_files(folder: Path, ending: str, source: str, errors: list[str]) -> dict[str, Path]:
    labels: dict[str, Path] = {}
    for path in _entries(folder / "labelsTr"):
        if not path.name.endswith(ending):
            errors.append(_wrong_ending("labelsTr", path, ending, source))
            continue
        labels[path.name[: -len(ending)]] = path
    return labels


def _cases(folder: Path, sub: str, groups: dict[str, dict[int, Path]], ending: str, declared: Declared,
           labels: dict[str, Path] | None, errors: list[str]) -> list[CaseFiles]:
    # A natural 2D image (PNG, RGB) holds several channels in one file, so the number of files a case
    # should have is what the cases show, not always the number of declared channels.
    files_per_case = max((max(channels) + 1 for channels in groups.values()), default=0)
    cases = []
    for case_id in sorted(groups):
        channels = groups[case_id]
        missing = [c for c in range(files_per_case) if c not in channels]
        for channel in missing:
            name = (declared.channel_names or {}).get(channel)
            errors.append(f"{sub}/{case_id}_{channel:04d}{ending}: missing; case '{case_id}' has "
                          f"{len(channels)} of {files_per_case} channel files"
                          f"{f' (channel {name!r})' if name else ''}.")
        label = None
        if labels is not None:
            label = labels.get(case_id)
            if label is None:
                errors.append(f"labelsTr/{case_id}{ending}: missing; case '{case_id}' has images in "
                              f"{sub}/ but no label.")
        cases.append(CaseFiles(case_id, [channels[c] for c in sorted(channels)], label, complete=not missing))
    return cases
