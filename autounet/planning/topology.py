"""The U-Net topology a patch and spacing allow: pooling per axis, kernel sizes, stage count."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autounet.planning.constants import (BOTTLENECK_KERNEL, CONV_KERNEL, INITIAL_PATCH_VOXELS_2D,
                                         INITIAL_PATCH_VOXELS_3D, MIN_FEATURE_MAP_EDGE, MIN_STAGES,
                                         POOL_SPACING_RATIO, SINGLE_AXIS_POOL_MIN_EDGE)


@dataclass
class Topology:
    """Per-stage kernels and strides for a patch, and the patch rounded up to fit them."""

    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    patch_size: list[int]

    @property
    def num_stages(self) -> int:
        return len(self.strides)

    @property
    def divisor(self) -> list[int]:
        """Per axis, the total downsampling: every patch edge is a multiple of it."""
        return [int(np.prod([s[a] for s in self.strides])) for a in range(len(self.patch_size))]


def initial_patch(spacing: list[float], median_shape: list[int]) -> list[int]:
    """A patch of the reference volume whose edges are inversely proportional to the spacing, clipped to the median.

    Finer axes get more voxels, so the patch covers a roughly cubic physical region.
    """
    inverse = 1.0 / np.asarray(spacing, dtype=float)
    voxels = INITIAL_PATCH_VOXELS_2D if len(spacing) == 2 else INITIAL_PATCH_VOXELS_3D
    patch = inverse * (voxels / np.prod(inverse)) ** (1 / len(spacing))
    return [int(min(round(p), m)) for p, m in zip(patch, median_shape)]


def derive_topology(spacing: list[float], patch_size: list[int]) -> Topology:
    """Pool each axis while it has at least 8 voxels and its spacing is within 2x of the finest axis.

    An axis gets 3-wide kernels from the first stage at which its (growing)
    spacing is within 2x of the finest; before that its kernel is 1, so very
    anisotropic axes are not convolved across. The bottleneck uses 3-wide
    kernels. The returned patch is rounded up to a multiple of the pooling.

    Example:
        >>> derive_topology([1.0, 1.0, 1.0], [40, 56, 40]).strides
        [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    """
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [int(p) for p in patch_size]
    kernel = [1] * dim
    kernels: list[list[int]] = []
    strides = [[1] * dim]
    while True:
        axes = [a for a in range(dim) if current_size[a] >= 2 * MIN_FEATURE_MAP_EDGE]
        if not axes:
            break
        finest = min(current_spacing[a] for a in axes)
        axes = [a for a in axes if current_spacing[a] / finest < POOL_SPACING_RATIO]
        if not axes or (len(axes) == 1 and current_size[axes[0]] < SINGLE_AXIS_POOL_MIN_EDGE):
            break
        finest_overall = min(current_spacing)
        for a in range(dim):
            if kernel[a] != CONV_KERNEL and current_spacing[a] / finest_overall < POOL_SPACING_RATIO:
                kernel[a] = CONV_KERNEL
        kernels.append(list(kernel))
        strides.append([2 if a in axes else 1 for a in range(dim)])
        for a in axes:
            current_spacing[a] *= 2
            current_size[a] = math.ceil(current_size[a] / 2)
    kernels.append([BOTTLENECK_KERNEL] * dim)
    divisor = [int(np.prod([s[a] for s in strides])) for a in range(dim)]
    padded = [int(math.ceil(p / d) * d) for p, d in zip(patch_size, divisor)]
    return Topology(kernels, strides, padded)


def topology_with_min_stages(spacing: list[float], patch_size: list[int]) -> Topology:
    """:func:`derive_topology`, with the patch padded up on the finest axes when it is too small to pool once."""
    topology = derive_topology(spacing, patch_size)
    if topology.num_stages >= MIN_STAGES:
        return topology
    finest = min(spacing)
    poolable = [s / finest < POOL_SPACING_RATIO for s in spacing]
    minimum = 2 * MIN_FEATURE_MAP_EDGE if sum(poolable) > 1 else SINGLE_AXIS_POOL_MIN_EDGE
    grown = [max(p, minimum) if ok else p for p, ok in zip(patch_size, poolable)]
    return derive_topology(spacing, grown)


def shrink_once(spacing: list[float], patch_size: list[int], median_shape: list[int]) -> Topology | None:
    """The next smaller patch: the axis largest relative to the median image loses one pooling multiple.

    Returns None when no axis can shrink further without losing the minimum stages.
    """
    current = topology_with_min_stages(spacing, patch_size)
    ratios = [p / max(m, 1) for p, m in zip(current.patch_size, median_shape)]
    for axis in sorted(range(len(ratios)), key=lambda a: -ratios[a]):
        trial = list(current.patch_size)
        trial[axis] -= current.divisor[axis]
        if trial[axis] < 1:
            continue
        step = derive_topology(spacing, trial).divisor[axis]
        smaller = list(current.patch_size)
        smaller[axis] -= step
        if smaller[axis] < 1:
            continue
        candidate = derive_topology(spacing, smaller)
        if candidate.num_stages >= MIN_STAGES and np.prod(candidate.patch_size) < np.prod(current.patch_size):
            return candidate
    return None
