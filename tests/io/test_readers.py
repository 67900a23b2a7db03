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


def test_jpeg_images_are_read_but_jpeg_label_maps_are_refused(tmp_path):
    from PIL import Image

    grey = np.tile(np.arange(0, 240, 20, dtype=np.uint8), (10, 1))
    Image.fromarray(grey).save(tmp_path / "photo_0000.jpg", quality=95)
    image, geometry = read_image([tmp_path / "photo_0000.jpg"])
    assert image.shape == (1, 1, 10, 12) and geometry.is_2d
    assert np.abs(image[0, 0] - grey).max() <= 8  # lossy, but the image is there
    labels = np.zeros((10, 12), np.uint8)
    labels[2:6, 3:9] = 2
    Image.fromarray(labels).save(tmp_path / "photo.jpg")
    with pytest.raises(ImageReadError, match=r"photo\.jpg: a label map cannot be a JPEG file.*save it as PNG"):
        read_label(tmp_path / "photo.jpg")


@pytest.mark.parametrize("ending", [".jpg", ".jpeg", ".JPG"])
def test_segmentation_of_a_jpeg_is_written_as_png(tmp_path, capsys, ending):
    from autounet.io import segmentation_path
    from autounet.io.geometry import SPACING_2D_THROUGH_PLANE, Geometry

    geometry = Geometry((SPACING_2D_THROUGH_PLANE, 1.0, 1.0), is_2d=True)
    labels = np.zeros((1, 7, 9), np.uint8)
    labels[0, 1:4, 2:8] = 1
    labels[0, 5, :] = 3
    written = write_segmentation(labels, geometry, tmp_path / f"photo{ending}")
    assert written == tmp_path / "photo.png" == segmentation_path(tmp_path / f"photo{ending}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
    printed = " ".join(capsys.readouterr().err.split())  # the console may wrap the line
    assert f"photo{ending}: segmentations are not written as JPEG (lossy), written as photo.png instead." in printed
    back, back_geometry = read_label(written)
    np.testing.assert_array_equal(back, labels)  # lossless: every label value survives
    assert back_geometry.is_2d
    assert segmentation_path(tmp_path / "x.nii.gz") == tmp_path / "x.nii.gz"
