"""Measure what a fold's final validation will cost: count its sliding-window tiles and time a slab of one case."""

from __future__ import annotations

import numpy as np
import torch

from autounet.inference.predictor import resolve_precision, tiles_per_pass
from autounet.inference.sliding_window import WindowSettings, predict_logits, tile_boxes, tile_shape
from autounet.measure.validation_cost import ValidationCost, time_validation
from autounet.network import build_network
from autounet.planning.plans import ConfigurationPlan
from autounet.preprocessing.store import CaseStore

TIMED_PASSES = 2
"""The slab timed holds about this many forward passes' worth of tiles (at least one plane of tiles)."""


def case_tiles(shape: tuple[int, ...], settings: WindowSettings) -> int:
    """Sliding-window tiles over a case of spatial ``shape`` (z, y, x).

    Example:
        >>> case_tiles((155, 240, 240), WindowSettings((64, 64), (16, 16)))
        7595
    """
    tile = tile_shape(shape, settings)
    return len(tile_boxes([max(s, t) for s, t in zip(shape, tile)], tile, settings.step))


def timing_slab(shape: tuple[int, ...], settings: WindowSettings, passes: int = TIMED_PASSES) -> int:
    """How many planes along the first axis to time: whole planes of tiles, until they hold ``passes`` forward
    passes' worth (or the whole case). A 2d network's tiles over 155 slices of 240x240 are timed on a few slices;
    a 3D network's on one slab of its patch's depth.

    Example:
        >>> timing_slab((155, 240, 240), WindowSettings((64, 64), (16, 16), tiles_per_pass=32))
        2
    """
    depth = tile_shape(shape, settings)[0]
    planes = min(depth, shape[0])
    while planes < shape[0] and case_tiles((planes, *shape[1:]), settings) < passes * settings.tiles_per_pass:
        planes = min(shape[0], planes + depth)
    return planes


def measure_validation_cost(plan: ConfigurationPlan, store: CaseStore, case_ids: list[str],
                            device: torch.device) -> ValidationCost:
    """Count the validation cases' tiles and time a real sliding-window prediction of a slab of the median one
    (:func:`timing_slab`), as the fold's validation will run it: its precision (bfloat16 on CPUs that have it) and
    its tiles per forward pass."""
    patch = tuple(plan.patch_size)
    settings = WindowSettings(patch, tuple(plan.network.total_downsampling()), mirror=False,
                              tiles_per_pass=tiles_per_pass(device, patch, plan.network.features_per_stage),
                              compute_dtype=resolve_precision("auto", device))
    tiles = {case_id: case_tiles(tuple(store.load_properties(case_id).shape_after_resample), settings)
             for case_id in case_ids}
    network = build_network(plan.network).to(device).eval() if tiles else None  # built as inference loads it

    def prepare(case_id: str):
        case = store.load(case_id, mmap=True)
        middle = case.data.shape[1] // 2
        planes = timing_slab(tuple(case.data.shape[1:]), settings)
        first = max(0, min(middle - planes // 2, case.data.shape[1] - planes))
        slab = np.array(case.data[:, first:first + planes])  # a writable copy for torch
        tile = tile_shape(tuple(slab.shape[1:]), settings)
        # untimed: the first pass builds kernels and allocates, which the whole validation pays once
        predict_logits(network, slab[(slice(None), *(slice(0, t) for t in tile))], plan.network.num_classes,
                       settings, device)
        timed_tiles = case_tiles(tuple(slab.shape[1:]), settings)
        return timed_tiles, lambda: predict_logits(network, slab, plan.network.num_classes, settings, device)

    return time_validation(tiles, prepare, 2 ** len(plan.patch_size), device)
