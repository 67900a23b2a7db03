"""The data root (``raw/``, ``preprocessed/``, ``results/``) and dataset name resolution.

The root comes from ``--root``, else ``$AUTOUNET_HOME``, else nnU-Net's three
variables (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) when all
are set, else ``~/autounet_data``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from autounet.errors import DatasetNotFoundError

DEFAULT_ROOT = Path("~/autounet_data")
ROOT_ENV = "AUTOUNET_HOME"
NNUNET_ENVS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
_DATASET_FOLDER = re.compile(r"^Dataset(\d{3})_(.+)$")


@dataclass(frozen=True)
class DataRoot:
    """The three folders every stage reads from and writes to."""

    raw: Path
    preprocessed: Path
    results: Path
    source: str = "default"

    @classmethod
    def under(cls, root: str | os.PathLike, source: str = "--root") -> "DataRoot":
        root = Path(root).expanduser().resolve()
        return cls(root / "raw", root / "preprocessed", root / "results", source)


def resolve_root(root: str | os.PathLike | None = None) -> DataRoot:
    """The data root from ``root``, else the environment, else the default."""
    if root is not None:
        return DataRoot.under(root, "--root")
    if os.environ.get(ROOT_ENV):
        return DataRoot.under(os.environ[ROOT_ENV], f"${ROOT_ENV}")
    if all(os.environ.get(name) for name in NNUNET_ENVS):
        raw, pre, res = (Path(os.environ[n]).expanduser().resolve() for n in NNUNET_ENVS)
        return DataRoot(raw, pre, res, "nnU-Net variables")
    return DataRoot.under(DEFAULT_ROOT, "default (~/autounet_data)")


@dataclass(frozen=True)
class DatasetLocation:
    """Where one dataset's raw data is and where its stages write."""

    name: str
    raw: Path
    preprocessed: Path
    results: Path


def _id_of(name: str) -> int | None:
    match = _DATASET_FOLDER.match(name)
    return int(match.group(1)) if match else None


def list_raw_datasets(root: DataRoot) -> list[str]:
    """Names of the dataset folders under the raw folder."""
    if not root.raw.is_dir():
        return []
    return sorted(p.name for p in root.raw.iterdir() if p.is_dir() and _id_of(p.name) is not None)


def locate_dataset(name_or_path: str, root: DataRoot) -> DatasetLocation:
    """Find a dataset by ``Dataset004``, ``4``, ``004``, ``Dataset004_Hippocampus`` or a path to its folder.

    Example:
        >>> loc = locate_dataset("4", resolve_root("~/data"))  # doctest: +SKIP
        >>> loc.raw.name
        'Dataset004_Hippocampus'
    """
    text = str(name_or_path).strip()
    as_path = Path(text).expanduser()
    if (as_path / "dataset.json").is_file() or os.sep in text or text.startswith("."):
        if not as_path.is_dir():
            raise DatasetNotFoundError(f"{as_path}: no such dataset folder.")
        name = as_path.resolve().name
        return DatasetLocation(name, as_path.resolve(), root.preprocessed / name, root.results / name)
    wanted = _parse_id(text)
    candidates = list_raw_datasets(root)
    if wanted is None:
        matches = [c for c in candidates if c == text]
    else:
        matches = [c for c in candidates if _id_of(c) == wanted]
    if not matches:
        # A dataset may be preprocessed or trained elsewhere and copied here without its raw data.
        for folder in (root.preprocessed, root.results):
            if folder.is_dir():
                matches = [p.name for p in folder.iterdir() if p.is_dir()
                           and (p.name == text or (wanted is not None and _id_of(p.name) == wanted))]
                if matches:
                    break
    if not matches:
        known = ", ".join(candidates) or "none"
        raise DatasetNotFoundError(f"dataset '{text}' is not in {root.raw} (datasets there: {known}); "
                                   f"give a path to the folder or set --root / ${ROOT_ENV}.")
    if len(matches) > 1:
        raise DatasetNotFoundError(f"dataset '{text}' is ambiguous: {', '.join(matches)}; use the full folder name.")
    name = matches[0]
    return DatasetLocation(name, root.raw / name, root.preprocessed / name, root.results / name)


def _parse_id(text: str) -> int | None:
    """The numeric id in ``4``, ``004``, ``Dataset004`` or ``Dataset004_Name``; None for other names."""
    match = re.fullmatch(r"(?:Dataset)?(\d{1,3})", text)
    if match:
        return int(match.group(1))
    return None
