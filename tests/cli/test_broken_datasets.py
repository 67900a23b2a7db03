"""A corpus of deliberately broken datasets, each run through the real CLI (`autounet verify`).

Each breaks one thing in a tiny valid dataset; the test asserts exit code 1, that the printed problem names
the offending file, that no traceback is printed, and that verify left every file untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from autounet.cli.main import app
from tests.conftest import make_nifti_dataset, make_png_dataset, write_nifti

runner = CliRunner()
SHAPE = (8, 10, 9)


def _edit_json(folder: Path, **changes) -> None:
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray] = lambda a: a, **geometry) -> None:
    """Rewrite a NIfTI file with its array changed and/or its spacing (z, y, x), origin or direction replaced."""
    image = sitk.ReadImage(str(path))
    array = change(sitk.GetArrayFromImage(image))
    spacing = geometry.get("spacing", image.GetSpacing()[::-1])
    write_nifti(path, array, spacing, geometry.get("origin", image.GetOrigin()),
                geometry.get("direction", image.GetDirection()))


def _label_with(value: int):
    def change(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[0, 0, 0] = value
        return array
    return change


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _make_2d_case(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for name, array in (("imagesTr/case_001_0000.nii.gz", rng.normal(size=SHAPE[1:]).astype(np.float32)),
                        ("labelsTr/case_001.nii.gz", np.zeros(SHAPE[1:], np.uint8))):
        image = sitk.GetImageFromArray(array)
        sitk.WriteImage(image, str(folder / name))


def _rgb_label(folder: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(folder / "labelsTr" / "img_001.png")


def _rgb_image_in_grey_dataset(folder: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((48, 40, 3), 7, np.uint8)).save(folder / "imagesTr" / "img_001_0000.png")


NIFTI = "nifti"
NIFTI_2CH = "nifti2"
PNG = "png"

# (id, base dataset, how to break it, text the problem line must hold (the offending file), extra text)
BROKEN: list[tuple[str, str, Callable[[Path], None], str, str]] = [
    ("dataset_json_missing", NIFTI, lambda f: (f / "dataset.json").unlink(), "dataset.json", "not found"),
    ("dataset_json_not_json", NIFTI, lambda f: (f / "dataset.json").write_text("{'labels': oops"),
     "dataset.json", "not valid JSON"),
    ("dataset_json_missing_key", NIFTI, lambda f: _edit_json(f, file_ending=None), "dataset.json",
     "file_ending"),
    ("dataset_json_malformed_channels", NIFTI, lambda f: _edit_json(f, channel_names=["MRI"]), "dataset.json",
     "channel_names"),
    ("labels_not_consecutive", NIFTI, lambda f: _edit_json(f, labels={"background": 0, "a": 1, "b": 3}),
     "dataset.json", "consecutive"),
    ("num_training_mismatch", NIFTI, lambda f: _edit_json(f, numTraining=9), "dataset.json", "numTraining"),
    ("missing_channel", NIFTI_2CH, lambda f: (f / "imagesTr/case_001_0001.nii.gz").unlink(),
     "imagesTr/case_001_0001.nii.gz", "missing"),
    ("channel_beyond_declared", NIFTI, lambda f: (f / "imagesTr/case_001_0001.nii.gz").write_bytes(
        (f / "imagesTr/case_001_0000.nii.gz").read_bytes()), "imagesTr/case_001_0001.nii.gz", "declares only"),
    ("too_few_channels_everywhere", NIFTI, lambda f: _edit_json(f, channel_names={"0": "MRI", "1": "T2"}),
     "imagesTr/case_000_0000.nii.gz", "declares 2"),
    ("missing_label", NIFTI, lambda f: (f / "labelsTr/case_001.nii.gz").unlink(), "labelsTr/case_001.nii.gz",
     "no label"),
    ("label_without_image", NIFTI, lambda f: (f / "labelsTr/case_099.nii.gz").write_bytes(
        (f / "labelsTr/case_001.nii.gz").read_bytes()), "labelsTr/case_099.nii.gz", "without image"),
    ("bad_file_name", NIFTI, lambda f: (f / "imagesTr/case_001_0000.nii.gz").rename(
        f / "imagesTr/case_001-0.nii.gz"), "imagesTr/case_001-0.nii.gz", "CASE_XXXX"),
    ("wrong_file_ending", NIFTI, lambda f: (f / "imagesTr/case_001_0000.nii.gz").rename(
        f / "imagesTr/case_001_0000.nrrd"), "imagesTr/case_001_0000.nrrd", "file ending"),
    ("label_shape_differs", NIFTI, lambda f: write_nifti(f / "labelsTr/case_001.nii.gz",
                                                         np.zeros((8, 10, 8), np.uint8)),
     "labelsTr/case_001.nii.gz", "shape"),
    ("channel_spacing_differs", NIFTI_2CH, lambda f: _rewrite(f / "imagesTr/case_001_0001.nii.gz",
                                                              spacing=(2.0, 1.0, 1.0)),
     "imagesTr/case_001_0001.nii.gz", "spacing"),
    ("label_origin_differs", NIFTI, lambda f: _rewrite(f / "labelsTr/case_001.nii.gz", origin=(5.0, 0.0, 0.0)),
     "labelsTr/case_001.nii.gz", "origin"),
    ("label_direction_differs", NIFTI, lambda f: _rewrite(f / "labelsTr/case_001.nii.gz",
                                                          direction=(0, 1, 0, 1, 0, 0, 0, 0, 1)),
     "labelsTr/case_001.nii.gz", "direction"),
    ("undeclared_label_value", NIFTI, lambda f: _rewrite(f / "labelsTr/case_001.nii.gz", _label_with(5)),
     "labelsTr/case_001.nii.gz", "not declared"),
    ("fractional_label", NIFTI, lambda f: _rewrite(f / "labelsTr/case_001.nii.gz",
                                                   lambda a: a.astype(np.float32) + 0.5),
     "labelsTr/case_001.nii.gz", "non-integer"),
    ("nan_intensities", NIFTI, lambda f: _rewrite(f / "imagesTr/case_001_0000.nii.gz",
                                                  lambda a: np.where(a > np.median(a), np.nan, a)),
     "imagesTr/case_001_0000.nii.gz", "NaN"),
    ("infinite_intensities", NIFTI, lambda f: _rewrite(f / "imagesTr/case_001_0000.nii.gz",
                                                       lambda a: np.where(a > np.median(a), np.inf, a)),
     "imagesTr/case_001_0000.nii.gz", "infinite"),
    ("corrupt_compressed_data", NIFTI, lambda f: (f / "imagesTr/case_001_0000.nii.gz").write_bytes(
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + bytes(range(7, 250))), "imagesTr/case_001_0000.nii.gz",
     "corrupt"),
    ("not_an_image", NIFTI, lambda f: (f / "labelsTr/case_001.nii.gz").write_text("hello"),
     "labelsTr/case_001.nii.gz", "cannot be read"),
    ("truncated_image", NIFTI, lambda f: _truncate(f / "imagesTr/case_001_0000.nii.gz"),
     "imagesTr/case_001_0000.nii.gz", ""),
    ("truncated_label", NIFTI, lambda f: _truncate(f / "labelsTr/case_001.nii.gz"), "labelsTr/case_001.nii.gz", ""),
    ("mix_of_2d_and_3d", NIFTI, _make_2d_case, "imagesTr/case_001_0000.nii.gz", "2D"),
    ("rgb_label", PNG, _rgb_label, "labelsTr/img_001.png", "one channel"),
    ("rgb_image_in_grey_dataset", PNG, _rgb_image_in_grey_dataset, "imagesTr/img_001_0000.png", "3 channel"),
    ("test_case_missing_channel", NIFTI_2CH, lambda f: (f / "imagesTs/case_003_0000.nii.gz").unlink(),
     "imagesTs/case_003_0000.nii.gz", "missing"),
]


def _base(kind: str, folder: Path) -> Path:
    if kind == PNG:
        return make_png_dataset(folder, n_cases=3)
    return make_nifti_dataset(folder, n_cases=3, n_channels=2 if kind == NIFTI_2CH else 1, shape=SHAPE)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_corpus_has_one_dataset_per_problem():
    assert len(BROKEN) >= 15
    assert len({case[0] for case in BROKEN}) == len(BROKEN)


@pytest.mark.parametrize("name,kind,breaker,offender,detail", BROKEN, ids=[case[0] for case in BROKEN])
def test_verify_names_the_offending_file(tmp_path, data_root, name, kind, breaker, offender, detail):
    folder = _base(kind, tmp_path / "Dataset200_Broken")
    breaker(folder)
    before = _snapshot(folder)
    result = runner.invoke(app, ["verify", str(folder), "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert any(line.startswith(f"error: {offender}: ") and detail in line for line in lines), result.stdout
    assert "FAILED" in result.stdout.splitlines()[-1]
    assert _snapshot(folder) == before, "verify must not modify the dataset"


def test_every_problem_is_reported_not_just_the_first(tmp_path, data_root):
    folder = _base(NIFTI_2CH, tmp_path / "Dataset201_Many")
    (folder / "labelsTr/case_000.nii.gz").unlink()
    (folder / "imagesTr/case_001_0001.nii.gz").unlink()
    _rewrite(folder / "labelsTr/case_002.nii.gz", _label_with(7))
    _edit_json(folder, numTraining=4)
    result = runner.invoke(app, ["verify", str(folder), "--workers", "2"])
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    for offender in ("labelsTr/case_000.nii.gz", "imagesTr/case_001_0001.nii.gz", "labelsTr/case_002.nii.gz",
                     "dataset.json"):
        assert sum(line.startswith(f"error: {offender}: ") for line in errors) == 1, (offender, errors)
    assert len(errors) == 4
    assert "4 errors" in result.stdout.splitlines()[-1]
