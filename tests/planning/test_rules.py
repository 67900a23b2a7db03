"""Each planning rule on hand-made fingerprints."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from autounet.errors import UserError
from autounet.planning.configurations import coverage, lowres_spacings, plan_configurations
from autounet.planning.normalization import normalization_scheme, use_mask_for_norm
from autounet.planning.spacing import median_shape_at, target_spacing
from autounet.planning.topology import derive_topology, initial_patch, shrink_once, topology_with_min_stages
from tests.planning.fingerprints import ct_like, image_2d, make_fingerprint, mri_like, tiny


def test_target_spacing_is_the_median_for_isotropic_data():
    assert target_spacing(mri_like()) == [1.0, 1.0, 1.0]


def test_anisotropic_axis_takes_the_10th_percentile():
    fp = ct_like(slice_spacings=[1.5, 2.5, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 5.0, 5.0])
    spacing = target_spacing(fp)
    assert spacing[1:] == [0.8, 0.8]
    assert spacing[0] == pytest.approx(np.percentile(fp.spacings[:, 0], 10))
    assert spacing[0] < 3.0


def test_anisotropic_spacing_never_finer_than_other_axes():
    fp = ct_like(slice_spacings=[0.5] * 3 + [3.0] * 7)
    assert target_spacing(fp)[0] >= 0.8


def test_coarse_axis_with_many_voxels_keeps_the_median():
    # 3 mm spacing but as many voxels as the other axes: not treated as anisotropic
    fp = make_fingerprint((160, 160, 160), (3.0, 0.8, 0.8), 10, slice_spacings=[2.0, 3.0, 3.0, 4.0])
    assert target_spacing(fp)[0] == pytest.approx(np.median(fp.spacings[:, 0]))


def test_median_shape_scales_with_spacing():
    fp = mri_like()
    assert median_shape_at(fp, [2.0, 2.0, 2.0]) == [int(round(s / 2)) for s in median_shape_at(fp, [1.0] * 3)]


def test_initial_patch_follows_spacing_and_is_clipped():
    assert initial_patch([1.0, 1.0, 1.0], [36, 50, 35]) == [36, 50, 35]
    patch = initial_patch([3.0, 0.8, 0.8], [1000, 1000, 1000])
    assert patch[1] == patch[2] and patch[0] < patch[1]
    assert np.prod(patch) == pytest.approx(256**3, rel=0.02)


def test_isotropic_topology_matches_the_published_plan():
    topology = derive_topology([1.0, 1.0, 1.0], [36, 50, 35])
    assert topology.patch_size == [40, 56, 40]
    assert topology.strides == [[1, 1, 1]] + [[2, 2, 2]] * 3
    assert topology.kernel_sizes == [[3, 3, 3]] * 4


def test_anisotropic_topology_pools_and_convolves_in_plane_first():
    topology = derive_topology([3.0, 0.8, 0.8], [40, 160, 160])
    assert topology.strides == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert topology.kernel_sizes[0] == [1, 3, 3]
    assert all(k == [3, 3, 3] for k in topology.kernel_sizes[1:])


def test_bottleneck_keeps_at_least_four_voxels_per_axis():
    for patch in ([40, 56, 40], [64, 192, 160], [13, 200, 9]):
        topology = derive_topology([1.0, 1.0, 1.0], patch)
        bottleneck = [p // d for p, d in zip(topology.patch_size, topology.divisor)]
        assert all(b >= 4 for b, p in zip(bottleneck, topology.patch_size) if p >= 8)


def test_patch_is_divisible_by_the_pooling():
    topology = derive_topology([1.0, 1.0], [50, 35])
    assert all(p % d == 0 for p, d in zip(topology.patch_size, topology.divisor))


def test_tiny_images_get_a_patch_that_pools_once():
    topology = topology_with_min_stages([1.0, 1.0, 1.0], [5, 6, 7])
    assert topology.num_stages == 2 and topology.patch_size == [8, 8, 8]


SHRINK_CASES = [([200, 60, 70], 1), ([50, 200, 200], 0), ([200, 200, 50], 2), ([200, 70, 60], 2)]
"""(median image shape, the one axis a 64^3 patch must lose a pooling multiple on: the largest patch/image)."""


@pytest.mark.parametrize("image,axis", SHRINK_CASES)
def test_shrinking_reduces_the_axis_largest_relative_to_the_image(image, axis):
    smaller = shrink_once([1.0, 1.0, 1.0], [64, 64, 64], image)
    assert [a for a in range(3) if smaller.patch_size[a] != 64] == [axis]  # that axis and no other changes
    assert smaller.patch_size[axis] == 64 - 8  # by one pooling multiple (3 poolings: 8)


def _shrink_smallest_ratio(spacing, patch, image):
    """A wrong rule: shrinks the axis smallest relative to the image."""
    axis = int(np.argmin([p / m for p, m in zip(patch, image)]))
    return derive_topology(spacing, [p - 8 if a == axis else p for a, p in enumerate(patch)])


def _shrink_every_axis(spacing, patch, image):
    """A wrong rule: shrinks all axes at once."""
    return derive_topology(spacing, [p - 8 for p in patch])


def _old_check(patch):
    """The assertion this test used to make: ``a and b or c`` reads as ``(a and b) or c``."""
    return patch[0] == 64 and patch[1] < 64 or patch[2] < 64


@pytest.mark.parametrize("broken", [_shrink_smallest_ratio, _shrink_every_axis])
def test_the_shrink_test_fails_on_a_broken_rule(monkeypatch, broken):
    monkeypatch.setattr(sys.modules[__name__], "shrink_once", broken)
    for image, axis in SHRINK_CASES:
        with pytest.raises(AssertionError):
            test_shrinking_reduces_the_axis_largest_relative_to_the_image(image, axis)


def test_the_old_check_let_a_shrinking_first_axis_pass():
    shrunk = _shrink_every_axis([1.0, 1.0, 1.0], [64, 64, 64], [200, 60, 60]).patch_size
    assert shrunk[0] < 64 and _old_check(shrunk)  # z shrank, yet the old assertion held


def test_normalization_schemes_from_channel_names():
    assert [normalization_scheme(n) for n in ("CT", "ct", "noNorm", "rescale_to_0_1", "rgb_to_0_1", "T1")] == [
        "ct", "ct", "none", "rescale_to_0_1", "rgb_to_0_1", "zscore"]
    assert use_mask_for_norm("zscore", 0.5) and not use_mask_for_norm("zscore", 0.9)
    assert not use_mask_for_norm("ct", 0.5)


def test_mri_plan_matches_nnunet_at_8_gb():
    plans = plan_configurations(mri_like(), num_classes=3, budget_gb=8.0)
    assert set(plans) == {"2d", "3d_fullres"}
    full = plans["3d_fullres"]
    assert full.patch_size == [40, 56, 40] and full.network.features_per_stage == [32, 64, 128, 256]
    # the batch is capped at 5 % of the dataset's voxels (9 for the real 260 Hippocampus cases)
    cap = round(0.05 * np.prod(full.median_shape) * 260 / np.prod(full.patch_size))
    assert full.batch_size == cap
    two = plans["2d"]
    assert two.is_2d and two.patch_size == [56, 40] and two.network.conv_dim == 2 and len(two.spacing) == 3
    assert full.estimated_memory_gb <= 8.0 and two.estimated_memory_gb <= 8.0
    assert full.normalization == ["zscore"] and full.use_mask_for_norm == [False]


def test_masked_zscore_when_cropping_removes_much():
    fp = make_fingerprint((36, 50, 35), (1.0, 1.0, 1.0), 10, crop_fraction=0.8)
    assert plan_configurations(fp, 3, 8.0, ["3d_fullres"])["3d_fullres"].use_mask_for_norm == [True]


@pytest.mark.slow
def test_ct_plan_is_anisotropic_and_cascades_when_the_patch_is_small():
    fp = make_fingerprint((200, 512, 512), (3.0, 0.8, 0.8), 40, channel_names=("CT",))
    plans = plan_configurations(fp, num_classes=3, budget_gb=8.0, names=["3d_fullres", "3d_lowres"])
    full = plans["3d_fullres"]
    assert full.network.kernel_sizes[0] == [1, 3, 3] and full.network.strides[1] == [1, 2, 2]
    assert full.normalization == ["ct"] and full.use_mask_for_norm == [False]
    assert full.resampling.order_data == 3 and full.resampling.order_data_z == 0
    assert coverage(full.patch_size, full.median_shape) < 0.25
    low = plans["3d_lowres"]
    assert low.next_stage == "3d_cascade_fullres" and plans["3d_cascade_fullres"].previous_stage == "3d_lowres"
    assert all(a > b for a, b in zip(low.spacing[1:], full.spacing[1:]))
    assert coverage(low.patch_size, low.median_shape) >= 0.25
    assert low.estimated_memory_gb <= 8.0


def test_lowres_spacing_grows_fine_axes_first():
    steps = lowres_spacings([3.0, 0.8, 0.8], steps=5)
    assert steps[-1][0] == 3.0 and steps[-1][1] > 0.8


def test_ct_like_patch_and_features():
    plans = plan_configurations(ct_like(), num_classes=3, budget_gb=8.0, names=["3d_fullres"])
    full = plans["3d_fullres"]
    assert max(full.network.features_per_stage) == 320
    assert full.network.strides[1] == [1, 2, 2]


def test_2d_dataset_gets_only_2d():
    plans = plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)
    assert list(plans) == ["2d"]
    assert plans["2d"].patch_size == [512, 512] and max(plans["2d"].network.features_per_stage) == 512
    with pytest.raises(UserError, match="2D"):
        plan_configurations(image_2d(), num_classes=2, budget_gb=8.0, names=["3d_fullres"])


def test_tiny_images_plan_a_network_that_builds():
    plans = plan_configurations(tiny(), num_classes=3, budget_gb=8.0)
    full = plans["3d_fullres"]
    assert full.network.num_stages >= 2 and full.batch_size >= 2


def test_one_case_is_refused():
    with pytest.raises(UserError, match="at least 2"):
        plan_configurations(mri_like(n_cases=1), num_classes=3, budget_gb=8.0)


def test_unknown_configuration_is_refused():
    with pytest.raises(UserError, match="unknown configuration"):
        plan_configurations(mri_like(), 3, 8.0, ["3d_huge"])


def test_lowres_alone_when_not_needed_is_refused_with_the_reason():
    with pytest.raises(UserError, match="3d_lowres is not needed"):
        plan_configurations(mri_like(), 3, 8.0, ["3d_lowres"])
    notes: list[str] = []
    plans = plan_configurations(mri_like(), 3, 8.0, ["3d_fullres", "3d_lowres"], notes=notes)
    assert list(plans) == ["3d_fullres"] and "not needed" in notes[0]
