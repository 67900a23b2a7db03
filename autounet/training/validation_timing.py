"""Measure what a fold's final validation will cost: count its sliding-window tiles and time one real case."""

from __future__ import annotations

import numpy as np
import torch

from autounet.inference.predictor import resolve_precision
from autounet.inference.sliding_window import WindowSettings, predict_logits, tile_boxes, tile_shape
from autounet.measure.validation_cost import ValidationCost, time_validation
from autounet.network import build_network
from autounet.planning.plans import ConfigurationPlan
from autounet.preprocessing.store import CaseStore


def measure_validation_cost(plan: ConfigurationPlan, store: CaseStore, case_ids: list[str],
                            device: torch.device) -> ValidationCost:
    """Count the validation cases' tiles and time a real sliding-window prediction of the median one."""
    # at the precision the fold's validation will run in (bfloat16 on CPUs that have it: ~3x faster than float32)
    settings = WindowSettings(tuple(plan.patch_size), tuple(plan.network.total_downsampling()), mirror=False,
                              compute_dtype=resolve_precision("auto", device))
    tiles = {}
    for case_id in case_ids:
        shape = store.load_properties(case_id).shape_after_resample
        tile = tile_shape(shape, settings)
        tiles[case_id] = len(tile_boxes([max(s, t) for s, t in zip(shape, tile)], tile, settings.step))
    network = build_network(plan.network).to(device).eval() if tiles else None  # built as inference loads it

    def prepare(case_id: str):
        data = np.array(store.load(case_id).data)  # a writable copy for torch
        return lambda: predict_logits(network, data, plan.network.num_classes, settings, device)

    return time_validation(tiles, prepare, 2 ** len(plan.patch_size), device)
