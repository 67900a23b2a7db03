"""A hand-made, valid Plans for tiny datasets (used until the planner exists, and to control every field)."""

from __future__ import annotations

from autounet.fingerprint.model import ChannelStats
from autounet.network.config import NetworkConfig
from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans, ResamplingPlan


def make_configuration(name: str = "3d_fullres", spacing=(1.0, 1.0, 1.0), is_2d: bool = False,
                       normalization=("zscore",), use_mask=(False,), resampling: ResamplingPlan | None = None
                       ) -> ConfigurationPlan:
    dims = 2 if is_2d else 3
    network = NetworkConfig(conv_dim=dims, in_channels=len(normalization), num_classes=3,
                            features_per_stage=[4, 8], kernel_sizes=[[3] * dims] * 2,
                            strides=[[1] * dims, [2] * dims])
    return ConfigurationPlan(
        name=name, data_identifier=f"autounet_{name}", is_2d=is_2d, spacing=list(spacing),
        median_shape=[16, 20, 18], patch_size=[16, 16] if is_2d else [16, 16, 16], batch_size=2,
        network=network, normalization=list(normalization), use_mask_for_norm=list(use_mask),
        resampling=resampling or ResamplingPlan())


def make_plans(*configurations: ConfigurationPlan, stats: list[ChannelStats] | None = None,
               dataset_name: str = "Dataset100_Tiny") -> Plans:
    configurations = configurations or (make_configuration(),)
    channels = len(configurations[0].normalization)
    stats = stats or [ChannelStats(mean=30.0, std=5.0, median=30.0, min=0.0, max=60.0,
                                   percentile_00_5=10.0, percentile_99_5=50.0)] * channels
    return Plans(dataset_name=dataset_name, hardware=HardwareInfo(device="cpu"), memory_budget_gb=4.0,
                 configurations={c.name: c for c in configurations}, intensity_stats=stats)


def prepare_dataset(raw_folder, root, plans: Plans | None = None):
    """Fingerprint a raw dataset folder under ``root``/raw and save ``plans`` (default: zscore 3d_fullres).

    Returns the DatasetLocation.
    """
    from autounet.fingerprint import save_fingerprint
    from autounet.fingerprint.compute import compute_fingerprint
    from autounet.paths import DataRoot, locate_dataset
    from autounet.planning.plans import save_plans

    data_root = DataRoot.under(root)
    location = locate_dataset(raw_folder.name, data_root)
    fingerprint = compute_fingerprint(location.raw, workers=1)
    save_fingerprint(fingerprint, location.preprocessed)
    plans = plans or make_plans(dataset_name=location.name)
    plans.intensity_stats = fingerprint.channels
    save_plans(plans, location.preprocessed)
    return location
