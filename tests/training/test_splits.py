"""Cross-validation folds: ours, nnU-Net's splits_final.json honoured, and ours written for nnU-Net."""

from __future__ import annotations

import json

import pytest

from autounet.errors import UserError
from autounet.training.splits import NNUNET_SPLITS_FILE, SPLITS_FILE, load_or_create_splits, make_splits

CASES = [f"case_{i:03d}" for i in range(10)]


def test_new_splits_are_written_for_both_tools(tmp_path):
    splits = load_or_create_splits(tmp_path, CASES)
    assert [len(s.val) for s in splits] == [2] * 5
    ours = json.loads((tmp_path / SPLITS_FILE).read_text())
    assert ours == json.loads((tmp_path / NNUNET_SPLITS_FILE).read_text())
    assert ours == [{"train": s.train, "val": s.val} for s in make_splits(CASES)]


def test_nnunet_folds_are_kept_when_switching_tools(tmp_path):
    theirs = [{"train": CASES[3:], "val": CASES[:3]}, {"train": CASES[:3], "val": CASES[3:]}]
    (tmp_path / NNUNET_SPLITS_FILE).write_text(json.dumps(theirs))
    splits = load_or_create_splits(tmp_path, CASES)
    assert [(s.train, s.val) for s in splits] == [(f["train"], f["val"]) for f in theirs]
    assert json.loads((tmp_path / SPLITS_FILE).read_text()) == theirs
    assert json.loads((tmp_path / NNUNET_SPLITS_FILE).read_text()) == theirs  # untouched


def test_our_edited_splits_win_over_nnunets_and_nnunets_are_never_overwritten(tmp_path):
    ours = [{"train": CASES[5:], "val": CASES[:5]}, {"train": CASES[:5], "val": CASES[5:]}]
    theirs = [{"train": CASES[1:], "val": CASES[:1]}]
    (tmp_path / SPLITS_FILE).write_text(json.dumps(ours))
    (tmp_path / NNUNET_SPLITS_FILE).write_text(json.dumps(theirs))
    assert [s.val for s in load_or_create_splits(tmp_path, CASES)] == [CASES[:5], CASES[5:]]
    assert json.loads((tmp_path / NNUNET_SPLITS_FILE).read_text()) == theirs


def test_nnunet_splits_naming_unknown_cases_are_refused_by_name(tmp_path):
    (tmp_path / NNUNET_SPLITS_FILE).write_text(json.dumps([{"train": ["other_001"], "val": CASES[:1]}]))
    with pytest.raises(UserError, match=r"splits_final\.json: fold 0 names cases that are not preprocessed: other_001"):
        load_or_create_splits(tmp_path, CASES)
    assert not (tmp_path / SPLITS_FILE).exists()
