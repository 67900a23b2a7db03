"""Shared fixtures: tiny synthetic datasets written to temporary folders, and the real datasets when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"


def shared_dataset(name: str) -> Path:
    """A real dataset from ../shared/data; the test is skipped when it is not beside the checkout."""
    path = SHARED_DATA / name
    if not (path / "dataset.json").is_file():
        pytest.skip(f"{path} is not available (CI has it beside the checkout)")
    return path


REAL_DATASETS = ["Dataset004_Hippocampus", "Dataset001_ISBI2012EM", "Dataset010_PH2Dermoscopy"]


@pytest.fixture(autouse=True)
def own_timing_cache(tmp_path_factory, monkeypatch):
    """Each test remembers step timings in its own folder (autounet.measure.timing_cache), never the user's, so
    no test depends on what another measured; the CLI's subprocesses inherit it through the environment."""
    monkeypatch.setenv("AUTOUNET_CACHE_DIR", str(tmp_path_factory.mktemp("timing-cache")))


def write_dataset_json(folder: Path, channels: dict, labels: dict, n: int, ending: str, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"channel_names": channels, "labels": labels, "numTraining": n, "file_ending": ending, **extra}
    (folder / "dataset.json").write_text(json.dumps(data, indent=2))


def write_nifti(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                direction=None) -> None:
    """Write a (z, y, x) array; spacing given in (z, y, x) order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))


def synthetic_volume(rng: np.random.Generator, shape=(16, 20, 18), n_labels: int = 2):
    """A noisy image with one or two bright blobs and the matching label map."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    dist = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    radius = min(s for s in shape if s > 1) / 4  # a 2D shape (1, y, x) has a single slice
    label = np.zeros(shape, np.uint8)
    label[dist < radius] = 1
    if n_labels >= 2:
        label[(dist < radius) & (x > centre[2])] = 2
    image = rng.normal(10, 2, shape).astype(np.float32) + 20 * (label > 0) + 10 * (label == 2)
    return image, label


def make_nifti_dataset(folder: Path, n_cases: int = 6, n_channels: int = 1, shape=(16, 20, 18),
                       spacing=(1.0, 1.0, 1.0), seed: int = 0, n_test: int = 1) -> Path:
    """A tiny 3D NIfTI dataset in nnU-Net raw format."""
    rng = np.random.default_rng(seed)
    channels = {str(c): ("MRI" if c == 0 else f"T{c}") for c in range(n_channels)}
    write_dataset_json(folder, channels, {"background": 0, "a": 1, "b": 2}, n_cases, ".nii.gz")
    for i in range(n_cases + n_test):
        image, label = synthetic_volume(rng, shape)
        sub = "imagesTr" if i < n_cases else "imagesTs"
        for c in range(n_channels):
            write_nifti(folder / sub / f"case_{i:03d}_{c:04d}.nii.gz", image + 5 * c, spacing)
        if i < n_cases:
            write_nifti(folder / "labelsTr" / f"case_{i:03d}.nii.gz", label, spacing)
    return folder


def make_png_dataset(folder: Path, n_cases: int = 6, rgb: bool = False, shape=(48, 40), seed: int = 0,
                     n_test: int = 1) -> Path:
    """A tiny 2D PNG dataset (grey or RGB) in nnU-Net raw format."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"0": "R", "1": "G", "2": "B"} if rgb else {"0": "grey"}
    write_dataset_json(folder, channels, {"background": 0, "fg": 1}, n_cases, ".png")
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_cases + n_test):
        image, label = synthetic_volume(rng, (1, *shape), n_labels=1)
        grey = np.clip(image[0] * 4, 0, 255).astype(np.uint8)
        pixels = np.stack([grey, 255 - grey, grey // 2], -1) if rgb else grey
        sub = "imagesTr" if i < n_cases else "imagesTs"
        Image.fromarray(pixels).save(folder / sub / f"img_{i:03d}_0000.png")
        if i < n_cases:
            Image.fromarray(label[0]).save(folder / "labelsTr" / f"img_{i:03d}.png")
    return folder


@pytest.fixture
def nifti_dataset(tmp_path: Path) -> Path:
    return make_nifti_dataset(tmp_path / "raw" / "Dataset100_Tiny")


@pytest.fixture
def nifti_dataset_2ch(tmp_path: Path) -> Path:
    return make_nifti_dataset(tmp_path / "raw" / "Dataset101_TinyTwo", n_channels=2)


@pytest.fixture
def png_dataset(tmp_path: Path) -> Path:
    return make_png_dataset(tmp_path / "raw" / "Dataset102_TinyPng")


@pytest.fixture
def rgb_dataset(tmp_path: Path) -> Path:
    return make_png_dataset(tmp_path / "raw" / "Dataset103_TinyRgb", rgb=True)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch) -> Path:
    """An empty data root selected through $AUTOUNET_HOME."""
    root = tmp_path / "root"
    monkeypatch.setenv("AUTOUNET_HOME", str(root))
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    return root
