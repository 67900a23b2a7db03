"""Time fitting keeps a residual encoder's blocks per stage, and its cost counts two convolutions per block."""

from __future__ import annotations

import copy

from autounet.network.config import NetworkConfig
from autounet.network.cost import sample_cost
from autounet.planning.variants import _per_stage


def test_blocks_per_stage_keep_their_shape_when_the_stage_count_changes():
    assert _per_stage([1, 3, 4, 6, 6, 6], 4) == [1, 3, 4, 6]
    assert _per_stage([1, 3, 4], 5) == [1, 3, 4, 4, 4]
    assert _per_stage([1, 1, 1], 0) == []


def test_a_residual_block_costs_two_convolutions():
    plain = NetworkConfig(3, 1, 3, [8, 16, 32], [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                          n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[1, 1])
    residual = copy.deepcopy(plain)
    residual.architecture = "residual_encoder"
    residual.n_conv_per_stage = [1, 1, 1]  # one block of two convolutions per stage: the plain network's work
    assert sample_cost(residual, [32, 32, 32]) == sample_cost(plain, [32, 32, 32])
