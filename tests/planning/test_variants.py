"""Cheaper variants of a plan for time budgets: narrower, then smaller patches that the network can still pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.network import build_network
from autounet.planning.configurations import plan_configurations
from autounet.planning.variants import (COARSENING_MIN_DICE, MAX_PATCH_HALVINGS, WIDTH_FACTOR, cheaper_variants,
                                        coarser)
from tests.planning.fingerprints import image_2d, mri_like


@pytest.fixture(scope="module")
def em_plan():
    return plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)["2d"]


def test_ladder_halves_the_width_then_the_patch_edges(em_plan):
    ladder = cheaper_variants(em_plan)
    assert ladder[0] is em_plan and len(ladder) == 2 + MAX_PATCH_HALVINGS
    narrow = ladder[1]
    assert narrow.patch_size == em_plan.patch_size
    assert narrow.network.features_per_stage == [int(f * WIDTH_FACTOR) for f in em_plan.network.features_per_stage]
    for bigger, smaller in zip(ladder[1:], ladder[2:]):
        assert np.prod(smaller.patch_size) <= np.prod(bigger.patch_size) / 4
        assert smaller.network.num_stages <= bigger.network.num_stages
        assert smaller.network.features_per_stage == bigger.network.features_per_stage[:smaller.network.num_stages]
        assert smaller.batch_size >= bigger.batch_size  # the memory a smaller patch frees allows a larger batch
    assert em_plan.network.features_per_stage[0] == 32  # the memory plan itself is untouched


@pytest.mark.parametrize("name", ["2d", "3d_fullres"])
def test_every_variant_builds_and_keeps_the_patch_shape(name):
    plan = plan_configurations(mri_like(), num_classes=3, budget_gb=8.0, names=[name])[name]
    for variant in cheaper_variants(plan):
        divisor = np.prod(np.asarray(variant.network.strides), axis=0)
        assert all(p % d == 0 for p, d in zip(variant.patch_size, divisor)), variant.patch_size
        net = build_network(variant.network).eval()
        with torch.no_grad():
            out = net(torch.zeros(1, variant.network.in_channels, *variant.patch_size))
        out = out[0] if isinstance(out, (list, tuple)) else out
        assert tuple(out.shape[2:]) == tuple(variant.patch_size) and out.shape[1] == 3


def test_coarser_grid_keeps_the_field_of_view_in_its_own_data_folder(em_plan):
    narrow = cheaper_variants(em_plan)[1]
    coarse = coarser(narrow)
    assert coarse.spacing == [em_plan.spacing[0], *(2 * s for s in em_plan.spacing[1:])]
    assert coarse.data_identifier == "2d_at_" + "x".join(f"{2 * s:g}" for s in em_plan.spacing[1:])
    assert coarse.median_shape == [round(m / 2) for m in em_plan.median_shape]
    assert np.prod(coarse.patch_size) <= np.prod(narrow.patch_size) / 4
    field_of_view = [p * s for p, s in zip(coarse.patch_size, coarse.spacing[1:])]
    assert all(f >= min(p * s, m * s) * 0.9 for f, p, s, m in
               zip(field_of_view, [x / 2 for x in narrow.patch_size], narrow.spacing[1:], narrow.median_shape))
    assert narrow.data_identifier == "2d" and narrow.spacing == em_plan.spacing  # the input is untouched


def test_coarser_applies_to_2d_plans_only():
    plan = plan_configurations(mri_like(), num_classes=3, budget_gb=8.0, names=["3d_fullres"])["3d_fullres"]
    assert coarser(plan) is None


@pytest.mark.parametrize("dice_2x, dice_4x, expected", [
    (0.999, 0.996, ["coarser", "coarser"]),   # PH2-like: large structures survive a 4x coarser grid
    (0.995, 0.921, ["coarser", "smaller"]),   # 2x survives, 4x does not
    (0.987, 0.921, ["smaller", "smaller"]),   # ISBI 2012: membranes lost detail on a 2x coarser grid
    (0.963, 0.870, ["smaller", "smaller"]),   # Hippocampus-like: small structures
])
def test_ladder_coarsens_only_while_the_labels_survive(em_plan, dice_2x, dice_4x, expected):
    measured = {2: dice_2x, 4: dice_4x}
    assert dice_2x >= COARSENING_MIN_DICE or expected[0] == "smaller"
    ladder = cheaper_variants(em_plan, measured.get)
    steps = ["coarser" if after.spacing != before.spacing else "smaller"
             for before, after in zip(ladder[1:], ladder[2:])]
    assert steps == expected
    for bigger, smaller in zip(ladder[1:], ladder[2:]):
        assert np.prod(smaller.patch_size) <= np.prod(bigger.patch_size) / 4


def test_ladder_without_label_detail_only_halves_the_patch(em_plan):
    unmeasured = cheaper_variants(em_plan, lambda factor: None)
    assert [v.spacing for v in unmeasured] == [em_plan.spacing] * len(unmeasured)
    assert [v.patch_size for v in unmeasured] == [v.patch_size for v in cheaper_variants(em_plan)]
