"""Cheaper versions of a planned configuration, for a time budget that cannot afford the one sized for memory.

The memory planner fills the GPU (or the CPU's 8 GB default) with the largest patch and a network of nnU-Net's
width. On a CPU such a network can take seconds per iteration, so a 30-minute budget buys a few hundred updates
and the model stays under-trained (ISBI 2012's 512x512 plan: 228 iterations, 8.2 % of pixels misclassified).
The ladder below trades capacity for updates, in the order that costs the least accuracy per second saved (see
docs/benchmarks.md, "Network and patch for time"): first the width, then the patch. A 2d patch's voxels are cut
either by a coarser grid (same field of view, less detail) when the labels survive it, or else by halving its
edges (same detail, less context): PH2's large lesions lost context to a halved patch (Dice 0.685 at 10 minutes).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from collections.abc import Callable

from autounet.planning.fit import shrink_sequence
from autounet.planning.plans import ConfigurationPlan
from autounet.planning.topology import derive_topology

WIDTH_FACTOR = 0.5
"""The narrower network has this share of the planned features at every stage (nnU-Net's 32 -> 16 at the top)."""
MAX_PATCH_HALVINGS = 2
"""Patch edges are halved at most this many times (to a quarter of the planned edge)."""
MAX_BATCH = 64
"""Largest batch timed for a smaller patch (the memory a smaller patch frees allows more)."""
COARSENING_MIN_DICE = 0.99
"""A 2d configuration goes to a 2x coarser in-plane grid (instead of a smaller patch) when its labels keep this
Dice through a round trip to that grid (median over cases, measured by the fingerprint). PH2 keeps 0.999 at 2x
and 0.996 at 4x (coarser: Dice 0.917 at 10 minutes, against 0.685 with halved patches); ISBI 2012 keeps 0.987 at
2x (coarser: pixel error 0.052 at 30 minutes, against 0.051 with halved patches; Rand error 0.164 against 0.111);
Hippocampus 0.960 at 2x."""


def patch_spacing(plan: ConfigurationPlan) -> list[float]:
    """The spacing of the patch's axes (a 2d plan's spacing also holds the slice axis)."""
    return [float(s) for s in (plan.spacing[1:] if plan.is_2d else plan.spacing)]


def grid_factor(plan: ConfigurationPlan, variant: ConfigurationPlan) -> float:
    """How many times coarser ``variant``'s grid is than ``plan``'s (1 for the same grid), on the finest axis.

    Example:
        >>> grid_factor(ph2_2d, coarser(coarser(narrower(ph2_2d))))  # doctest: +SKIP
        4.0
    """
    return min(v / p for v, p in zip(patch_spacing(variant), patch_spacing(plan)))


def narrower(plan: ConfigurationPlan, factor: float = WIDTH_FACTOR) -> ConfigurationPlan:
    """``plan`` with ``factor`` times the features at every stage (at least 1 each).

    Example:
        >>> narrower(plan).network.features_per_stage  # doctest: +SKIP
        [16, 32, 64, 128, 256, 256, 256, 256]
    """
    smaller = copy.deepcopy(plan)
    smaller.network.features_per_stage = [max(1, int(round(f * factor))) for f in plan.network.features_per_stage]
    return smaller


def _per_stage(counts: list[int], stages: int) -> list[int]:
    """``counts`` (convolutions or residual blocks per stage) cut or extended (repeating the last) to ``stages``;
    a residual encoder's 1, 3, 4, 6, ... keeps its shape."""
    counts = list(counts) or [2]  # a one-stage network has no decoder counts to repeat: nnU-Net's two
    return (counts[:stages] + [counts[-1]] * max(0, stages - len(counts))) if stages else []


def with_patch(plan: ConfigurationPlan, patch_size: list[int]) -> ConfigurationPlan:
    """``plan`` re-shaped for ``patch_size``: the topology (stages, kernels, strides) that patch allows, the same
    feature progression cut to the new stage count, and a batch scaled up by the voxels the patch frees."""
    smaller = copy.deepcopy(plan)
    topology = derive_topology(patch_spacing(plan), list(patch_size))
    features = list(plan.network.features_per_stage)
    features += [features[-1]] * (topology.num_stages - len(features))
    network = smaller.network
    network.features_per_stage = features[:topology.num_stages]
    network.kernel_sizes, network.strides = topology.kernel_sizes, topology.strides
    network.n_conv_per_stage = _per_stage(plan.network.n_conv_per_stage, topology.num_stages)
    network.n_conv_per_stage_decoder = _per_stage(plan.network.n_conv_per_stage_decoder, topology.num_stages - 1)
    smaller.patch_size = list(topology.patch_size)
    ratio = np.prod(plan.patch_size, dtype=float) / np.prod(topology.patch_size, dtype=float)
    smaller.batch_size = max(plan.batch_size, min(MAX_BATCH, math.floor(plan.batch_size * ratio)))
    return smaller


def coarser(plan: ConfigurationPlan, factor: int = 2) -> ConfigurationPlan | None:
    """The 2d ``plan`` on an in-plane grid ``factor`` times coarser, with the largest patch in the planner's
    shrink order that has at most 1/factor^2 of the voxels (so about the same field of view); its data is
    preprocessed to its own folder (``data_identifier`` names the spacing). None for a 3D plan, or when no
    such patch exists.

    Example:
        >>> ph2 = coarser(narrower(ph2_2d))  # doctest: +SKIP
        >>> ph2.spacing, ph2.patch_size, ph2.data_identifier  # doctest: +SKIP
        ([999.0, 2.0, 2.0], [320, 384], '2d_at_2x2')
    """
    if not plan.is_2d:
        return None
    coarse = copy.deepcopy(plan)
    coarse.spacing = [plan.spacing[0], *(float(s) * factor for s in plan.spacing[1:])]
    coarse.median_shape = [max(1, int(round(m / factor))) for m in plan.median_shape]
    coarse.data_identifier = f"{plan.name}_at_{'x'.join(f'{s:g}' for s in coarse.spacing[1:])}"
    patch = halved_patch(coarse, factor)  # ``coarse`` still holds the plan's patch: the limit is its share
    return None if patch is None else with_patch(coarse, patch)


def halved_patch(plan: ConfigurationPlan, factor: int = 2) -> list[int] | None:
    """The first patch in the planner's shrink order (at ``plan``'s spacing and median shape) with every edge
    about divided by ``factor`` (at most 1/factor^dim of the voxels); None when the planner cannot shrink that
    far."""
    limit = np.prod(plan.patch_size, dtype=float) / factor ** len(plan.patch_size)
    for topology in shrink_sequence(patch_spacing(plan), list(plan.median_shape)):
        if np.prod(topology.patch_size, dtype=float) <= limit and topology.num_stages >= 2:
            return list(topology.patch_size)
    return None


def cheaper_variants(plan: ConfigurationPlan,
                     label_dice: Callable[[int], float | None] | None = None) -> list[ConfigurationPlan]:
    """The planned configuration, then ever cheaper versions of it: half the width, then (at half width) up to
    :data:`MAX_PATCH_HALVINGS` steps that each cut the patch's voxels by 2^dim.

    A step is a 2x coarser grid (:func:`coarser`) when ``label_dice(factor)`` -- the labels' Dice on a grid
    ``factor`` times coarser than the plan's, e.g. ``Fingerprint.label_dice_when_coarsened`` -- reaches
    :data:`COARSENING_MIN_DICE`; otherwise the patch's edges are halved.

    Example:
        >>> [v.patch_size for v in cheaper_variants(isbi_2d)]  # doctest: +SKIP
        [[512, 512], [512, 512], [256, 256], [128, 128]]
    """
    ladder = [plan, narrower(plan)]
    factor = 1
    for _ in range(MAX_PATCH_HALVINGS):
        kept = label_dice(factor * 2) if label_dice is not None else None
        variant = coarser(ladder[-1]) if kept is not None and kept >= COARSENING_MIN_DICE else None
        if variant is not None:
            factor *= 2
        else:
            patch = halved_patch(ladder[-1])
            if patch is None:
                break
            variant = with_patch(ladder[-1], patch)
        ladder.append(variant)
    return ladder
