"""verify_dataset as the planning stage calls it: the report's contents, on good and broken datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.dataset.verify import VerifyReport, verify_dataset
from tests.conftest import EXAMPLES, make_nifti_dataset, make_png_dataset, write_nifti


def test_report_ok_means_no_errors():
    assert VerifyReport().ok and VerifyReport(warnings=["x: w"]).ok
    assert not VerifyReport(errors=["x: e"]).ok


def test_good_datasets_pass(nifti_dataset, nifti_dataset_2ch, png_dataset, rgb_dataset):
    for folder in (nifti_dataset, nifti_dataset_2ch, png_dataset, rgb_dataset):
        report = verify_dataset(folder, workers=1)
        assert report == VerifyReport([], [], 6), folder.name


def test_shipped_example_passes():
    report = verify_dataset(EXAMPLES / "Dataset004_Hippocampus", workers=2)
    assert report.ok and report.num_cases == 20 and report.warnings == []


def test_missing_folder(tmp_path):
    report = verify_dataset(tmp_path / "absent")
    assert not report.ok and report.errors == [f"{tmp_path / 'absent'}: no such dataset folder."]


def test_each_dataset_json_problem_is_its_own_line_and_files_are_still_checked(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset300_Json", n_cases=2, shape=(8, 10, 9))
    data = json.loads((folder / "dataset.json").read_text())
    data.pop("labels")
    data["numTraining"] = "two"
    (folder / "dataset.json").write_text(json.dumps(data))
    write_nifti(folder / "labelsTr" / "case_001.nii.gz", np.zeros((8, 10, 8), np.uint8))
    report = verify_dataset(folder, workers=1)
    assert report.errors[:2] == ["dataset.json: missing key 'labels'.",
                                 "dataset.json: 'numTraining' must be a non-negative integer."]
    assert any(e.startswith("labelsTr/case_001.nii.gz: shape 8x10x8") for e in report.errors)
    assert len(report.errors) == 3


def test_unusable_file_ending_is_inferred_from_the_files(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset301_Ending", n_cases=3, shape=(8, 10, 9))
    data = json.loads((folder / "dataset.json").read_text())
    data["file_ending"] = "nii.gz"
    (folder / "dataset.json").write_text(json.dumps(data))
    (folder / "imagesTr" / "case_000_0000.nii.gz").rename(folder / "imagesTr" / "case_000_0000.mha")
    report = verify_dataset(folder, workers=1)
    assert report.errors[0].startswith("dataset.json: 'file_ending' must be")
    assert "imagesTr/case_000_0000.mha: file ending '.mha' differs from the file_ending '.nii.gz' used by most " \
           "files." in report.errors


def test_hidden_files_are_ignored(tmp_path):
    folder = make_png_dataset(tmp_path / "Dataset302_Hidden", n_cases=2)
    (folder / "imagesTr" / ".DS_Store").write_bytes(b"\0\0")
    (folder / "labelsTr" / "._img_000.png").write_bytes(b"\0\0")
    assert verify_dataset(folder, workers=1).ok


def test_empty_and_constant_cases_are_warnings(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset303_Warn", n_cases=2, shape=(8, 10, 9), n_test=0)
    write_nifti(folder / "labelsTr" / "case_000.nii.gz", np.zeros((8, 10, 9), np.uint8))
    write_nifti(folder / "imagesTr" / "case_001_0000.nii.gz", np.full((8, 10, 9), 3, np.int16))
    report = verify_dataset(folder, workers=1)
    assert report.ok and report.num_cases == 2
    assert report.warnings == ["labelsTr/case_000.nii.gz: no foreground (every voxel is background).",
                               "imagesTr/case_001_0000.nii.gz: every voxel has the same value (3)."]


def test_ignore_label_is_declared_but_not_foreground(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset304_Ignore", n_cases=1, shape=(8, 10, 9), n_test=0)
    data = json.loads((folder / "dataset.json").read_text())
    data["labels"]["ignore"] = 3
    (folder / "dataset.json").write_text(json.dumps(data))
    labels = np.zeros((8, 10, 9), np.uint8)
    labels[0] = 3
    write_nifti(folder / "labelsTr" / "case_000.nii.gz", labels)
    report = verify_dataset(folder, workers=1)
    assert report.ok and report.warnings == ["labelsTr/case_000.nii.gz: no foreground (every voxel is background)."]


def test_empty_images_folder(tmp_path):
    folder = make_nifti_dataset(tmp_path / "Dataset305_Empty", n_cases=1, shape=(8, 10, 9), n_test=0)
    for path in (folder / "imagesTr").iterdir():
        path.unlink()
    report = verify_dataset(folder, workers=1)
    assert "imagesTr: holds no case files named CASE_XXXX.nii.gz." in report.errors
    assert report.num_cases == 0


def test_missing_folders(tmp_path: Path):
    folder = tmp_path / "Dataset306_Bare"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0},
                                                     "numTraining": 0, "file_ending": ".nii.gz"}))
    report = verify_dataset(folder, workers=1)
    assert [e.split(":")[0] for e in report.errors] == ["imagesTr", "labelsTr"]


def test_jpeg_dataset_is_refused_in_one_sentence(tmp_path):
    from PIL import Image

    folder = make_png_dataset(tmp_path / "Dataset305_Jpeg", n_cases=2, n_test=1)
    for png in sorted(folder.rglob("*.png")):
        Image.open(png).save(png.with_suffix(".jpg"))
        png.unlink()
    data = json.loads((folder / "dataset.json").read_text())
    data["file_ending"] = ".jpg"
    (folder / "dataset.json").write_text(json.dumps(data))
    report = verify_dataset(folder, workers=1)
    assert report.errors == ["dataset.json: 'file_ending' '.jpg' would make the label maps JPEG files, whose "
                             "lossy compression changes label values; store images and labels as \".png\"."]
    from autounet.dataset.spec import load_spec
    from autounet.errors import InvalidDatasetError

    with pytest.raises(InvalidDatasetError, match="'file_ending' '.jpg' would make the label maps JPEG"):
        load_spec(folder)


REGIONS = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}


@pytest.mark.parametrize("order,problem", [
    ([1, 2, 3], None),
    ([1, 2], "'regions_class_order' [1, 2] has 2 value(s) but labels declare 3 region(s) (whole, core, enhancing); "
             "give one value per region, in that order."),
    ([1, 2, 3, 4], "'regions_class_order' [1, 2, 3, 4] has 4 value(s) but labels declare 3 region(s) (whole, core, "
                   "enhancing); give one value per region, in that order."),
    ([1, 1, 3], "'regions_class_order' gives region 'core' [2, 3] the value 1, which is not one of its label "
                "values."),
    ([3, 2, 1], "'regions_class_order' gives region 'enhancing' [3] the value 1, which is not one of its label "
                "values."),
    ("1,2,3", "'regions_class_order' must be a list of integers, one per region (whole, core, enhancing), "
              "not '1,2,3'."),
])
def test_regions_class_order_is_checked_against_the_regions(tmp_path, order, problem):
    from autounet.dataset.spec import load_spec
    from autounet.errors import InvalidDatasetError

    folder = make_nifti_dataset(tmp_path / "Dataset306_Regions", n_cases=1, shape=(6, 7, 8), n_test=0)
    data = json.loads((folder / "dataset.json").read_text())
    data["labels"], data["regions_class_order"] = REGIONS, order
    (folder / "dataset.json").write_text(json.dumps(data))
    errors = [e for e in verify_dataset(folder, workers=1).errors if e.startswith("dataset.json")]
    if problem is None:
        assert errors == []
        assert load_spec(folder).regions_class_order == [1, 2, 3]
        return
    assert errors == [f"dataset.json: {problem}"]
    with pytest.raises(InvalidDatasetError) as raised:
        load_spec(folder)
    assert str(raised.value) == f"{folder / 'dataset.json'}: {problem}"
