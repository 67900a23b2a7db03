"""Tiny trained models for the reliability tests (made from the inference test factory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_nifti_dataset, make_png_dataset
from tests.inference.factory import configuration, make_trained


@pytest.fixture
def trained_3d(data_root: Path) -> Path:
    """A 3d_fullres model of a tiny NIfTI dataset (Dataset100_Tiny); returns the raw dataset folder."""
    raw = make_nifti_dataset(data_root / "raw" / "Dataset100_Tiny", n_cases=1, n_test=2)
    make_trained(data_root, raw, [configuration()], folds=(0,))
    return raw


@pytest.fixture
def trained_png(data_root: Path) -> Path:
    """A 2d model of a tiny PNG dataset (Dataset102_TinyPng); returns the raw dataset folder."""
    raw = make_png_dataset(data_root / "raw" / "Dataset102_TinyPng", n_cases=1, n_test=2)
    make_trained(data_root, raw, [configuration("2d", channels=1, classes=2, is_2d=True)], folds=(0,))
    return raw
