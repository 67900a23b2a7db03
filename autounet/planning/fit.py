"""Fit a configuration's patch and batch to a memory budget with the memory model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autounet.errors import PlanningError
from autounet.network import NetworkConfig
from autounet.planning.constants import (BASE_FEATURES, MAX_DATASET_FRACTION_PER_BATCH, MAX_FEATURES_2D,
                                         MAX_FEATURES_3D, MIN_BATCH_SIZE, PATCH_FIT_BATCH_2D, PATCH_FIT_BATCH_3D)
from autounet.planning.memory import estimate_training_memory_gb, scaled_estimate_gb
from autounet.planning.presets import NetworkPreset, preset
from autounet.planning.topology import Topology, initial_patch, shrink_once, topology_with_min_stages


@dataclass
class FittedConfiguration:
    """A patch, batch and network that fit the budget, with the estimate that says so."""

    patch_size: list[int]
    batch_size: int
    network: NetworkConfig
    estimated_memory_gb: float


def network_for(topology: Topology, in_channels: int, num_classes: int,
                rules: NetworkPreset | None = None) -> NetworkConfig:
    """The U-Net ``rules`` (default: the plain preset) describe for a topology: features 32 * 2^stage, capped at
    320 (3D) or 512 (2D), the preset's architecture and blocks per stage."""
    rules = rules or preset(None)
    dim = len(topology.patch_size)
    cap = MAX_FEATURES_2D if dim == 2 else MAX_FEATURES_3D
    features = [min(BASE_FEATURES * 2**stage, cap) for stage in range(topology.num_stages)]
    return NetworkConfig(conv_dim=dim, in_channels=in_channels, num_classes=num_classes,
                         features_per_stage=features, kernel_sizes=topology.kernel_sizes, strides=topology.strides,
                         n_conv_per_stage=rules.encoder_counts(topology.num_stages),
                         n_conv_per_stage_decoder=[rules.decoder_convs] * (topology.num_stages - 1),
                         architecture=rules.architecture)


def shrink_sequence(spacing: list[float], median_shape: list[int]) -> list[Topology]:
    """Every candidate topology from the initial patch down to the smallest, largest first."""
    sequence = [topology_with_min_stages(spacing, initial_patch(spacing, median_shape))]
    while True:
        smaller = shrink_once(spacing, sequence[-1].patch_size, median_shape)
        if smaller is None:
            return sequence
        sequence.append(smaller)


def max_batch_by_dataset(patch_size: list[int], dataset_voxels: float,
                         fraction: float = MAX_DATASET_FRACTION_PER_BATCH) -> int:
    """The largest batch covering at most ``fraction`` (default 5 %) of the dataset's voxels (at least the minimum
    batch)."""
    return max(MIN_BATCH_SIZE, int(round(fraction * dataset_voxels / np.prod(patch_size))))


def fit_to_budget(spacing: list[float], median_shape: list[int], in_channels: int, num_classes: int,
                  budget_gb: float, dataset_voxels: float, amp: bool = True,
                  rules: NetworkPreset | None = None) -> FittedConfiguration:
    """The largest patch (in the shrink order) that trains at the patch-fitting batch, then the largest batch,
    for the network ``rules`` (a preset; default: the plain U-Net) describe.

    Raises PlanningError when even the smallest network does not fit ``budget_gb``.
    """
    rules = rules or preset(None)
    fit_batch = PATCH_FIT_BATCH_2D if len(spacing) == 2 else PATCH_FIT_BATCH_3D
    sequence = shrink_sequence(spacing, median_shape)

    def by_dataset(patch_size: list[int]) -> int:
        return max_batch_by_dataset(patch_size, dataset_voxels, rules.max_dataset_fraction_per_batch)

    def estimate(index: int, batch: int) -> float:
        topology = sequence[index]
        return estimate_training_memory_gb(network_for(topology, in_channels, num_classes, rules),
                                           topology.patch_size, batch, amp)

    fit_cap = min(fit_batch, by_dataset(sequence[-1].patch_size))

    def fits(index: int) -> bool:
        batch = min(fit_cap, by_dataset(sequence[index].patch_size))
        return estimate(index, batch) <= budget_gb

    low = first_fitting(sequence, fits, lambda index: scaled_estimate_gb(
        network_for(sequence[0], in_channels, num_classes, rules), sequence[index].patch_size,
        min(fit_cap, by_dataset(sequence[index].patch_size)), amp) <= budget_gb)
    if low is None:
        smallest = sequence[-1]
        raise PlanningError(
            f"a {budget_gb:g} GB budget is too small for any network: the smallest patch "
            f"{'x'.join(map(str, smallest.patch_size))} at batch {MIN_BATCH_SIZE} needs "
            f"{estimate(len(sequence) - 1, MIN_BATCH_SIZE):.2f} GB; give more --gpu-memory.")
    topology = sequence[low]
    network = network_for(topology, in_channels, num_classes, rules)
    cap = by_dataset(topology.patch_size)
    batch = largest_fitting_batch(lambda b: estimate(low, b), budget_gb, cap)
    return FittedConfiguration(topology.patch_size, batch, network, estimate(low, batch))


def rough_patch_size(spacing: list[float], median_shape: list[int], reference: NetworkConfig, budget_gb: float,
                     dataset_voxels: float, amp: bool = True,
                     max_dataset_fraction: float = MAX_DATASET_FRACTION_PER_BATCH) -> list[int]:
    """About the patch :func:`fit_to_budget` chooses, from ``reference``'s voxel-scaled memory profile (no tracing).

    For searches over many spacings; the final choice is always fitted exactly.
    """
    sequence = shrink_sequence(spacing, median_shape)
    fit_batch = PATCH_FIT_BATCH_2D if len(spacing) == 2 else PATCH_FIT_BATCH_3D
    fit_cap = min(fit_batch, max_batch_by_dataset(sequence[-1].patch_size, dataset_voxels, max_dataset_fraction))
    for topology in sequence:
        batch = min(fit_cap, max_batch_by_dataset(topology.patch_size, dataset_voxels, max_dataset_fraction))
        if scaled_estimate_gb(reference, topology.patch_size, batch, amp) <= budget_gb:
            return topology.patch_size
    return sequence[-1].patch_size


def first_fitting(sequence: list[Topology], fits, roughly_fits) -> int | None:
    """Index of the first (largest) topology that ``fits``; None when none does.

    Memory falls along the sequence. Every new topology costs a few traces,
    so the search starts where the quick ``roughly_fits`` approximation says,
    then walks to the exact answer (neighbours mostly share a topology).
    """
    if fits(0):
        return 0
    last = len(sequence) - 1
    index = next((i for i in range(1, last + 1) if roughly_fits(i)), last)
    if fits(index):
        while index > 1 and fits(index - 1):
            index -= 1
        return index
    while index < last:
        index += 1
        if fits(index):
            return index
    return None


def largest_fitting_batch(estimate, budget_gb: float, cap: int) -> int:
    """The largest batch in [MIN_BATCH_SIZE, cap] whose estimate fits (MIN_BATCH_SIZE when none does).

    Memory grows almost linearly with the batch: extrapolate from two
    estimates, then step to the exact answer with a few more.
    """
    two, three = estimate(2), estimate(3)
    per_sample = max(three - two, 1e-9)
    guess = int(math.floor((budget_gb - two) / per_sample)) + 2
    batch = max(MIN_BATCH_SIZE, min(cap, guess))
    while batch > MIN_BATCH_SIZE and estimate(batch) > budget_gb:
        batch -= 1
    while batch < cap and estimate(batch + 1) <= budget_gb:
        batch += 1
    return batch
