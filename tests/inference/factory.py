"""Trained-model folders for tests, in the real on-disk format, with tiny random-initialised networks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from autounet.fingerprint.model import ChannelStats
from autounet.network import NetworkConfig, build_network
from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans
from autounet.utils.serde import to_json_value


def configuration(name: str = "3d_fullres", channels: int = 1, classes: int = 3, is_2d: bool = False,
                  spacing=(1.0, 1.0, 1.0), patch=None, previous_stage: str | None = None,
                  extra_inputs: int = 0) -> ConfigurationPlan:
    dims = 2 if is_2d else 3
    network = NetworkConfig(conv_dim=dims, in_channels=channels + extra_inputs, num_classes=classes,
                            features_per_stage=[4, 8], kernel_sizes=[[3] * dims] * 2,
                            strides=[[1] * dims, [2] * dims])
    return ConfigurationPlan(
        name=name, data_identifier=f"autounet_{name}", is_2d=is_2d, spacing=list(spacing),
        median_shape=[16, 20, 18], patch_size=list(patch or ([16, 16] if is_2d else [16, 16, 16])), batch_size=2,
        network=network, normalization=["zscore"] * channels, use_mask_for_norm=[False] * channels,
        previous_stage=previous_stage)


def plans_of(dataset_name: str, *configurations: ConfigurationPlan) -> Plans:
    channels = len(configurations[0].normalization)
    stats = [ChannelStats(mean=30.0, std=5.0, median=30.0, min=0.0, max=60.0, percentile_00_5=10.0,
                          percentile_99_5=50.0)] * channels
    return Plans(dataset_name=dataset_name, hardware=HardwareInfo(device="cpu"), memory_budget_gb=4.0,
                 configurations={c.name: c for c in configurations}, intensity_stats=stats)


def make_fold(results: Path, plans: Plans, name: str, fold: int | str, dataset_json: Path, seed: int = 0,
              checkpoints=("final",)) -> Path:
    """``results/<name>/fold_<fold>/`` with plans.json, dataset.json, training_config.json and weights."""
    folder = results / name / f"fold_{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(to_json_value(plans), indent=2))
    shutil.copy(dataset_json, folder / "dataset.json")
    (folder / "training_config.json").write_text(json.dumps({"configuration": name, "fold": fold}))
    torch.manual_seed(seed)
    network = build_network(plans.configuration(name).network)
    for checkpoint in checkpoints:
        save_file(network.state_dict(), str(folder / f"model_{checkpoint}.safetensors"))
    return folder


def make_trained(root: Path, raw_dataset: Path, configurations: list[ConfigurationPlan],
                 folds=(0, 1)) -> Path:
    """A trained dataset in ``root/results/<name>``: every configuration with ``folds`` fold folders."""
    name = raw_dataset.name
    plans = plans_of(name, *configurations)
    results = root / "results" / name
    for index, config in enumerate(configurations):
        for fold in folds:
            make_fold(results, plans, config.name, fold, raw_dataset / "dataset.json", seed=10 * index + int(fold))
    return results
