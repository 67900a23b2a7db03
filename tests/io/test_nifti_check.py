"""NIfTI integrity checks: truncated files and NaN voxels that SimpleITK would silently read as zeros."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.errors import ImageReadError
from autounet.io import read_image
from autounet.io.nifti_check import nonfinite_voxels, read_layout, truncation_problem


def _write(path, array):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


@pytest.mark.parametrize("ending", [".nii", ".nii.gz"])
def test_truncated_file_is_refused(tmp_path, ending):
    path = _write(tmp_path / f"cut_0000{ending}", np.arange(6000, dtype=np.int16).reshape(10, 20, 30))
    assert truncation_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    assert "truncated" in truncation_problem(path)
    with pytest.raises(ImageReadError, match=f"cut_0000{ending.replace('.', '[.]')}: is truncated"):
        read_image([path])


def test_layout_from_header(tmp_path):
    layout = read_layout(_write(tmp_path / "a.nii.gz", np.zeros((4, 5, 6), np.float32)))
    assert (layout.data_offset, layout.data_bytes, layout.is_float) == (352, 4 * 5 * 6 * 4, True)
    assert not read_layout(_write(tmp_path / "b.nii", np.zeros((4, 5, 6), np.uint8))).is_float
    (tmp_path / "c.nii").write_bytes(b"not a header")
    assert read_layout(tmp_path / "c.nii") is None


def test_multi_member_gzip_is_not_mistaken_for_truncated(tmp_path):
    plain = _write(tmp_path / "whole.nii", np.arange(1000, dtype=np.float32).reshape(10, 10, 10)).read_bytes()
    split = tmp_path / "two_members.nii.gz"
    split.write_bytes(gzip.compress(plain[:1500]) + gzip.compress(plain[1500:]))
    assert truncation_problem(split) is None


def test_corrupt_compressed_data(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + bytes(range(7, 250)))
    assert truncation_problem(path).startswith("is corrupt")


def test_nan_and_inf_voxels_are_counted_though_simpleitk_reads_zeros(tmp_path):
    array = np.ones((3, 4, 5), np.float32)
    array[0, 0, :3] = np.nan
    array[2, 3, 4] = -np.inf
    path = _write(tmp_path / "nan.nii.gz", array)
    assert nonfinite_voxels(path) == 4
    assert nonfinite_voxels(_write(tmp_path / "ints.nii.gz", np.ones((3, 4, 5), np.int16))) == 0
