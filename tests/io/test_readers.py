import numpy as np
import pytest

from autounet.errors import ImageReadError
from autounet.io import read_image, read_label, write_segmentation
from autounet.io import nibabel_io
from tests.conftest import write_nifti


def test_nifti_round_trip_keeps_geometry(tmp_path):
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    labels = np.zeros((5, 6, 7), np.uint8)
    labels[1:3, 2:4, 3:6] = 2
    write_nifti(tmp_path / "ref.nii.gz", labels.astype(np.float32), spacing=(2.5, 0.7, 0.9),
                origin=(10.0, -3.0, 4.5), direction=direction)
    image, geometry = read_image([tmp_path / "ref.nii.gz"])
    assert image.shape == (1, 5, 6, 7) and image.dtype == np.float32
    assert geometry.spacing == pytest.approx((2.5, 0.7, 0.9))
    write_segmentation(labels, geometry, tmp_path / "out.nii.gz")
    back, back_geometry = read_label(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(back, labels)
    assert back_geometry.matches(geometry) == []
    assert back_geometry.direction == pytest.approx(direction)


def test_nibabel_reader_agrees_with_simpleitk(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.normal(size=(4, 5, 6)).astype(np.float32)
    write_nifti(tmp_path / "a.nii.gz", array, spacing=(3.0, 1.0, 0.5), origin=(1.0, 2.0, 3.0),
                direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    a, ga = read_image([tmp_path / "a.nii.gz"])
    b, gb = nibabel_io.read(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(a, b)
    assert ga.matches(gb) == []


def test_float_labels_with_whole_values_are_accepted(tmp_path):
    write_nifti(tmp_path / "l.nii.gz", np.array([[[0.0, 1.0, 2.0]]], np.float32))
    labels, _ = read_label(tmp_path / "l.nii.gz")
    assert labels.dtype == np.uint8 and labels.tolist() == [[[0, 1, 2]]]


def test_fractional_labels_are_refused(tmp_path):
    write_nifti(tmp_path / "l.nii.gz", np.array([[[0.0, 1.5]]], np.float32))
    with pytest.raises(ImageReadError, match="l.nii.gz.*non-integer"):
        read_label(tmp_path / "l.nii.gz")


def test_png_rgb_becomes_three_channels_and_labels_round_trip(tmp_path):
    from PIL import Image

    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    Image.fromarray(rgb).save(tmp_path / "x_0000.png")
    image, geometry = read_image([tmp_path / "x_0000.png"])
    assert image.shape == (3, 1, 6, 8) and geometry.is_2d
    assert image[:, 0, 0, 0].tolist() == [10, 20, 30]
    labels = np.zeros((1, 6, 8), np.uint8)
    labels[0, 2:4, 1:5] = 1
    write_segmentation(labels, geometry, tmp_path / "x.png")
    back, _ = read_label(tmp_path / "x.png")
    np.testing.assert_array_equal(back, labels)


def test_tiff_stack_reads_spacing_sidecar(tmp_path):
    import tifffile

    stack = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    tifffile.imwrite(tmp_path / "s_0000.tif", stack)
    (tmp_path / "s_0000.json").write_text('{"spacing": [5.0, 1.0, 1.0]}')
    image, geometry = read_image([tmp_path / "s_0000.tif"])
    assert image.shape == (1, 2, 3, 4) and geometry.spacing == (5.0, 1.0, 1.0) and not geometry.is_2d


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken_0000.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ImageReadError, match="broken_0000.nii.gz"):
        read_image([bad])
