"""Cheaper variants of a plan for time budgets: narrower, then smaller patches that the network can still pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.network import build_network
from autounet.planning.configurations import plan_configurations
from autounet.planning.variants import MAX_PATCH_HALVINGS, WIDTH_FACTOR, cheaper_variants
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
