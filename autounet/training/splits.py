"""Cross-validation splits: ``splits.json`` in nnU-Net's format, written once, respected when edited; nnU-Net's
``splits_final.json`` is read where ours is missing and written beside ours where nnU-Net's is.

The file is a JSON list with one ``{"train": [ids], "val": [ids]}`` per fold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.errors import UserError
from autounet.utils.atomic import write_json

SPLITS_FILE = "splits.json"
NNUNET_SPLITS_FILE = "splits_final.json"
"""nnU-Net's name for the same list of folds."""
DEFAULT_FOLDS = 5
SPLIT_SEED = 12345


@dataclass
class FoldSplit:
    """The case ids one fold trains and validates on."""

    train: list[str]
    val: list[str]


def make_splits(case_ids: list[str], n_folds: int = DEFAULT_FOLDS, seed: int = SPLIT_SEED) -> list[FoldSplit]:
    """A seeded K-fold partition of the sorted ``case_ids``: every case is validated in exactly one fold.

    Example:
        >>> [len(s.val) for s in make_splits([f"c{i}" for i in range(7)], 3)]
        [3, 2, 2]
    """
    ids = sorted(case_ids)
    n_folds = min(n_folds, len(ids))
    if n_folds < 2:
        raise UserError(f"cross-validation needs at least 2 cases, found {len(ids)}; train with --fold all.")
    order = np.random.default_rng(seed).permutation(len(ids))
    folds = np.array_split(order, n_folds)
    splits = []
    for held_out in folds:
        val = sorted(ids[i] for i in held_out)
        splits.append(FoldSplit(train=[c for c in ids if c not in set(val)], val=val))
    return splits


def load_or_create_splits(preprocessed_folder: Path, case_ids: list[str]) -> list[FoldSplit]:
    """The dataset's splits (any number of folds): ``splits.json``; else nnU-Net's ``splits_final.json`` (a user
    switching from nnU-Net keeps their folds), copied to ``splits.json``; else new seeded splits, written to
    ``splits.json`` and, where nnU-Net has none yet, to ``splits_final.json`` (so nnU-Net uses the same folds)."""
    path = Path(preprocessed_folder) / SPLITS_FILE
    nnunet = Path(preprocessed_folder) / NNUNET_SPLITS_FILE
    if not path.is_file() and nnunet.is_file():
        splits = _read_splits(nnunet, case_ids)
        write_json(path, _as_json(splits))
        return splits
    if not path.is_file():
        splits = make_splits(case_ids)
        write_json(path, _as_json(splits))
        if not nnunet.exists():
            write_json(nnunet, _as_json(splits))
        return splits
    return _read_splits(path, case_ids)


def _as_json(splits: list[FoldSplit]) -> list[dict]:
    return [{"train": s.train, "val": s.val} for s in splits]


def _read_splits(path: Path, case_ids: list[str]) -> list[FoldSplit]:
    """The folds of a splits file, checked against the preprocessed cases."""
    try:
        data = json.loads(path.read_text())
        splits = [FoldSplit(train=[str(c) for c in entry["train"]], val=[str(c) for c in entry["val"]])
                  for entry in data]
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise UserError(f"{path}: is not a list of {{\"train\": [...], \"val\": [...]}} folds ({error}).") from error
    known = set(case_ids)
    for index, split in enumerate(splits):
        missing = sorted(set(split.train + split.val) - known)
        if missing:
            raise UserError(f"{path}: fold {index} names cases that are not preprocessed: "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.")
    return splits


def fold_cases(splits: list[FoldSplit], fold: int | str, all_case_ids: list[str], source: Path) -> FoldSplit:
    """The train/val cases of ``fold``; ``all`` trains on every case (and monitors on all of them)."""
    if fold == "all":
        return FoldSplit(train=sorted(all_case_ids), val=sorted(all_case_ids))
    if not isinstance(fold, int) or not 0 <= fold < len(splits):
        raise UserError(f"fold {fold} does not exist: {source / SPLITS_FILE} has folds 0..{len(splits) - 1} "
                        f"(or use --fold all).")
    split = splits[fold]
    if not split.train:
        raise UserError(f"{source / SPLITS_FILE}: fold {fold} has no training cases.")
    return split


def validation_case_ids(preprocessed_folder: Path, fold: int) -> list[str]:
    """The validation cases of ``fold`` as ``splits.json`` lists them."""
    path = Path(preprocessed_folder) / SPLITS_FILE
    try:
        return [str(c) for c in json.loads(path.read_text())[fold]["val"]]
    except (OSError, json.JSONDecodeError, IndexError, KeyError, TypeError) as error:
        raise UserError(f"{path}: has no validation cases for fold {fold} ({error}).") from error
