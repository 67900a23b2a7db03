"""Fingerprint maths (weighted statistics, crop box) against hand-computed values, and the JSON round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from autounet.dataset import find_cases, load_spec
from autounet.fingerprint import Fingerprint, load_fingerprint, save_fingerprint
from autounet.fingerprint.compute import (compute_fingerprint, fingerprint_case, weight_per_value,
                                          weighted_stats)
from autounet.fingerprint.detail import COARSENING_FACTORS, coarsened_label_dice
from autounet.fingerprint.crop import any_nonzero, bbox_of, crop_to_bbox, nonzero_mask
from autounet.io import read_image, read_label

STAT_NAMES = ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")


# --- weighted statistics ----------------------------------------------------------------------------------------

def test_weighted_stats_by_hand():
    # Weight 3 on 0 and 1 on 10: like the sample [0, 0, 0, 10].
    stats = weighted_stats(np.array([10.0, 0.0]), np.array([1.0, 3.0]))
    assert stats.mean == pytest.approx(2.5)
    assert stats.std == pytest.approx(math.sqrt((3 * 2.5**2 + 7.5**2) / 4))  # 4.3301
    assert (stats.min, stats.max) == (0.0, 10.0)
    assert stats.median == 0.0  # half the weight (2 of 4) is reached at 0
    assert stats.percentile_00_5 == 0.0 and stats.percentile_99_5 == 10.0


def test_weighted_stats_equal_weights_by_hand():
    stats = weighted_stats(np.array([4.0, 1.0, 3.0, 2.0]), np.full(4, 0.25))
    assert stats.mean == pytest.approx(2.5) and stats.std == pytest.approx(math.sqrt(1.25))
    assert stats.median == 2.0  # the smallest value whose cumulative weight reaches 50 %
    assert (stats.percentile_00_5, stats.percentile_99_5) == (1.0, 4.0)


@pytest.mark.parametrize("whole_numbers", [True, False], ids=["histogram", "sorted"])
def test_weighted_stats_equal_the_stats_of_the_repeated_sample(whole_numbers):
    """Integer weights w_i mean "value i seen w_i times": compare with plain numpy on the repeated sample."""
    rng = np.random.default_rng(7)
    values = rng.normal(100, 30, 3000)
    if whole_numbers:
        values = np.round(values)
    weights = rng.integers(1, 6, values.size).astype(float)
    stats = weighted_stats(values, weights)
    repeated = np.repeat(values, weights.astype(int))
    expected = dict(mean=repeated.mean(), std=repeated.std(), min=repeated.min(), max=repeated.max(),
                    **{name: np.percentile(repeated, q, method="inverted_cdf")
                       for name, q in (("median", 50), ("percentile_00_5", 0.5), ("percentile_99_5", 99.5))})
    for name in STAT_NAMES:
        assert getattr(stats, name) == pytest.approx(expected[name], rel=1e-12), name


def test_weight_per_value_merges_whole_numbers():
    values, weights = weight_per_value(np.array([3.0, 1.0, 3.0, 2.0]), np.array([1.0, 2.0, 0.5, 1.0]))
    assert values.tolist() == [1.0, 2.0, 3.0] and weights.tolist() == [2.0, 1.0, 1.5]


def test_weighted_stats_of_nothing_are_nan():
    stats = weighted_stats(np.zeros(0), np.zeros(0))
    assert all(math.isnan(getattr(stats, name)) for name in STAT_NAMES)


# --- crop box ---------------------------------------------------------------------------------------------------

def test_bbox_of_nonzero_voxels_over_all_channels():
    image = np.zeros((2, 4, 5, 6), np.float32)
    image[0, 1, 2, 3] = 1
    image[1, 2, 1, 4] = -5
    box = bbox_of(any_nonzero(image))
    assert box == [[1, 3], [1, 3], [3, 5]]
    assert crop_to_bbox(image, box).shape == (2, 2, 2, 2)


def test_empty_mask_keeps_the_whole_array():
    assert bbox_of(np.zeros((3, 4, 5), bool)) == [[0, 3], [0, 4], [0, 5]]


def test_hole_filling_does_not_change_the_box():
    image = np.zeros((1, 7, 7, 7), np.float32)
    image[0, 1:6, 1:6, 1:6] = 1
    image[0, 3, 3, 3] = 0  # an enclosed hole
    assert nonzero_mask(image)[3, 3, 3] and not any_nonzero(image)[3, 3, 3]
    assert bbox_of(nonzero_mask(image)) == bbox_of(any_nonzero(image)) == [[1, 6]] * 3


# --- per case and per dataset -----------------------------------------------------------------------------------

def test_fingerprint_case_keeps_every_foreground_voxel_with_equal_total_weight(nifti_dataset):
    case = find_cases(nifti_dataset, load_spec(nifti_dataset))[0]
    image, geometry = read_image(case.image_files)
    label, _ = read_label(case.label_file)
    result = fingerprint_case(case, samples_per_case=100_000)
    assert result.fingerprint.shape == image.shape[1:] and result.fingerprint.spacing == geometry.spacing
    foreground = image[0][label > 0]
    np.testing.assert_array_equal(result.values[0], np.sort(foreground))  # distinct noise values, ascending
    np.testing.assert_allclose(result.weights[0], 100_000 / foreground.size)
    assert result.weights[0].sum() == pytest.approx(100_000)


def test_fingerprint_case_of_whole_numbers_is_a_weighted_histogram(png_dataset):
    case = find_cases(png_dataset, load_spec(png_dataset))[0]
    image, _ = read_image(case.image_files)
    label, _ = read_label(case.label_file)
    result = fingerprint_case(case, samples_per_case=100_000)
    values, counts = np.unique(image[0][label > 0], return_counts=True)
    np.testing.assert_array_equal(result.values[0], values)
    np.testing.assert_allclose(result.weights[0], counts * 100_000 / counts.sum())


def test_fingerprint_case_measures_the_label_detail(nifti_dataset):
    case = find_cases(nifti_dataset, load_spec(nifti_dataset))[0]
    label, _ = read_label(case.label_file)
    measured = fingerprint_case(case, samples_per_case=100).fingerprint.coarsened_label_dice
    assert measured == coarsened_label_dice(label) and len(measured) == len(COARSENING_FACTORS)
    assert all(0.0 <= d <= 1.0 for d in measured)


def test_fingerprint_case_subsamples_reproducibly(nifti_dataset):
    case = find_cases(nifti_dataset, load_spec(nifti_dataset))[0]
    first, again = fingerprint_case(case, samples_per_case=50), fingerprint_case(case, samples_per_case=50)
    assert first.values[0].size == 50 and first.weights[0].tolist() == [1.0] * 50
    np.testing.assert_array_equal(first.values[0], again.values[0])


def test_dataset_mean_is_the_average_of_case_means(nifti_dataset_2ch):
    """Every case weighs the same, whatever its foreground size (as nnU-Net's equal per-case samples)."""
    spec = load_spec(nifti_dataset_2ch)
    case_means = []
    for case in find_cases(nifti_dataset_2ch, spec):
        image, _ = read_image(case.image_files)
        label, _ = read_label(case.label_file)
        case_means.append([channel[label > 0].mean() for channel in image])
    fp = compute_fingerprint(nifti_dataset_2ch, workers=1)
    expected = np.mean(case_means, axis=0)
    assert [c.mean for c in fp.channels] == pytest.approx(expected.tolist(), rel=1e-6)
    assert fp.channels[1].mean - fp.channels[0].mean == pytest.approx(5.0, rel=1e-5)  # channel 1 = channel 0 + 5


def test_parallel_and_serial_fingerprints_agree(nifti_dataset):
    serial, parallel = compute_fingerprint(nifti_dataset, workers=1), compute_fingerprint(nifti_dataset, workers=2)
    assert serial.to_json() == parallel.to_json()


def test_fingerprint_json_round_trip(tmp_path, png_dataset, rgb_dataset):
    for folder in (png_dataset, rgb_dataset):
        fp = compute_fingerprint(folder, workers=1)
        path = save_fingerprint(fp, tmp_path / folder.name)
        assert path.name == "fingerprint.json" and not list(path.parent.glob(".*tmp*"))
        loaded = load_fingerprint(tmp_path / folder.name)
        assert loaded == fp and loaded.cases[0].coarsened_label_dice == fp.cases[0].coarsened_label_dice != []
        assert isinstance(loaded.cases[0].shape, tuple) and loaded.cases[0].shape == (1, 48, 40)
        assert Fingerprint.from_json(loaded.to_json()) == fp
        assert loaded.channel_names == fp.channel_names and set(loaded.channel_names) == set(range(len(fp.channels)))


def test_missing_fingerprint_says_which_command_to_run(tmp_path: Path):
    from autounet.errors import MissingArtifactError

    with pytest.raises(MissingArtifactError, match="autounet fingerprint"):
        load_fingerprint(tmp_path)


def test_2d_nifti_dataset_is_2d(tmp_path):
    """2D is what the files hold (a 2D NIfTI), not what their ending suggests."""
    import SimpleITK as sitk

    from autounet.dataset.verify import verify_dataset
    from tests.conftest import synthetic_volume, write_dataset_json

    folder = tmp_path / "Dataset400_Flat"
    write_dataset_json(folder, {"0": "X-ray"}, {"background": 0, "a": 1}, 3, ".nii.gz")
    rng = np.random.default_rng(3)
    for i in range(3):
        image, label = synthetic_volume(rng, (1, 30, 24), n_labels=1)
        for sub, name, array in (("imagesTr", f"c{i}_0000", image[0]), ("labelsTr", f"c{i}", label[0])):
            (folder / sub).mkdir(exist_ok=True)
            item = sitk.GetImageFromArray(array)
            item.SetSpacing((0.5, 0.7))
            sitk.WriteImage(item, str(folder / sub / f"{name}.nii.gz"))
    assert verify_dataset(folder, workers=1).ok
    fp = compute_fingerprint(folder, workers=1)
    assert fp.is_2d and all(c.shape == (1, 30, 24) for c in fp.cases)
    assert all(c.spacing == pytest.approx((999.0, 0.7, 0.5)) for c in fp.cases)
