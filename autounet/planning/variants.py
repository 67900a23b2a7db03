"""Cheaper versions of a planned configuration, for a time budget that cannot afford the one sized for memory.

The memory planner fills the GPU (or the CPU's 8 GB default) with the largest patch and a network of nnU-Net's
width. On a CPU such a network can take seconds per iteration, so a 30-minute budget buys a few hundred updates
and the model stays under-trained (ISBI 2012's 512x512 plan: 228 iterations, pixel error 0.082). The ladder below
trades capacity for updates, in the order that costs the least accuracy per second saved (see
docs/benchmarks.md, "Network and patch for time"): first the width, then the patch.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from autounet.planning.fit import shrink_sequence
from autounet.planning.plans import ConfigurationPlan
from autounet.planning.topology import derive_topology

WIDTH_FACTOR = 0.5
"""The narrower network has this share of the planned features at every stage (nnU-Net's 32 -> 16 at the top)."""
MAX_PATCH_HALVINGS = 2
"""Patch edges are halved at most this many times (to a quarter of the planned edge)."""
MAX_BATCH = 64
"""Largest batch timed for a smaller patch (the memory a smaller patch frees allows more)."""


def _patch_spacing(plan: ConfigurationPlan) -> list[float]:
    """The spacing of the patch's axes (a 2d plan's spacing also holds the slice axis)."""
    return list(plan.spacing[1:] if plan.is_2d else plan.spacing)


def narrower(plan: ConfigurationPlan, factor: float = WIDTH_FACTOR) -> ConfigurationPlan:
    """``plan`` with ``factor`` times the features at every stage (at least 1 each).

    Example:
        >>> narrower(plan).network.features_per_stage  # doctest: +SKIP
        [16, 32, 64, 128, 256, 256, 256, 256]
    """
    smaller = copy.deepcopy(plan)
    smaller.network.features_per_stage = [max(1, int(round(f * factor))) for f in plan.network.features_per_stage]
    return smaller


def with_patch(plan: ConfigurationPlan, patch_size: list[int]) -> ConfigurationPlan:
    """``plan`` re-shaped for ``patch_size``: the topology (stages, kernels, strides) that patch allows, the same
    feature progression cut to the new stage count, and a batch scaled up by the voxels the patch frees."""
    smaller = copy.deepcopy(plan)
    topology = derive_topology(_patch_spacing(plan), list(patch_size))
    features = list(plan.network.features_per_stage)
    features += [features[-1]] * (topology.num_stages - len(features))
    network = smaller.network
    network.features_per_stage = features[:topology.num_stages]
    network.kernel_sizes, network.strides = topology.kernel_sizes, topology.strides
    network.n_conv_per_stage = list(plan.network.n_conv_per_stage[:1]) * topology.num_stages
    network.n_conv_per_stage_decoder = list(plan.network.n_conv_per_stage[:1]) * (topology.num_stages - 1)
    smaller.patch_size = list(topology.patch_size)
    ratio = np.prod(plan.patch_size, dtype=float) / np.prod(topology.patch_size, dtype=float)
    smaller.batch_size = max(plan.batch_size, min(MAX_BATCH, math.floor(plan.batch_size * ratio)))
    return smaller


def halved_patch(plan: ConfigurationPlan) -> list[int] | None:
    """The first patch in the planner's shrink order with every edge about halved (at most 1/2^dim of the
    voxels); None when the planner cannot shrink that far."""
    limit = np.prod(plan.patch_size, dtype=float) / 2 ** len(plan.patch_size)
    for topology in shrink_sequence(_patch_spacing(plan), list(plan.median_shape)):
        if np.prod(topology.patch_size, dtype=float) <= limit and topology.num_stages >= 2:
            return list(topology.patch_size)
    return None


def cheaper_variants(plan: ConfigurationPlan) -> list[ConfigurationPlan]:
    """The planned configuration, then ever cheaper versions of it: half the width, then the patch's edges
    halved (at half width) up to :data:`MAX_PATCH_HALVINGS` times.

    Example:
        >>> [v.patch_size for v in cheaper_variants(isbi_2d)]  # doctest: +SKIP
        [[512, 512], [512, 512], [256, 256], [128, 128]]
    """
    ladder = [plan, narrower(plan)]
    for _ in range(MAX_PATCH_HALVINGS):
        patch = halved_patch(ladder[-1])
        if patch is None:
            break
        ladder.append(with_patch(ladder[-1], patch))
    return ladder
