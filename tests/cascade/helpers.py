"""A tiny raw 3D dataset with hand-made 3d_fullres, 3d_lowres and 3d_cascade_fullres plans, preprocessed."""

from __future__ import annotations

from pathlib import Path

from autounet.fingerprint.model import ChannelStats
from autounet.paths import DataRoot, DatasetLocation
from autounet.planning.configurations import cascade_plan
from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans, save_plans
from autounet.training import TrainingConfig
from tests.conftest import make_nifti_dataset
from tests.training.helpers import network_config

DATASET = "Dataset160_CascadeTiny"
SHAPE = (16, 20, 18)
TINY = dict(epochs=1, iterations_per_epoch=2, val_iterations=1, num_workers=0, device="cpu")


def tiny_config(**overrides) -> TrainingConfig:
    return TrainingConfig(**{**TINY, **overrides})


def _plan(name: str, spacing: float, median: list[int], patch: list[int]) -> ConfigurationPlan:
    return ConfigurationPlan(name=name, data_identifier=name, is_2d=False, spacing=[spacing] * 3,
                             median_shape=median, patch_size=patch, batch_size=2, network=network_config(3, 3),
                             normalization=["zscore"], use_mask_for_norm=[False])


def make_cascade_root(root: Path, n_cases: int = 3) -> DatasetLocation:
    """``n_cases`` training cases (so ``n_cases`` folds) and one test image; plans with a cascade, preprocessed."""
    from autounet.preprocessing.dataset import preprocess_dataset

    data_root = DataRoot.under(root)
    raw = make_nifti_dataset(data_root.raw / DATASET, n_cases=n_cases, shape=SHAPE, spacing=(1.0, 1.0, 1.0))
    fullres = _plan("3d_fullres", 1.0, list(SHAPE), [16, 16, 16])
    lowres = _plan("3d_lowres", 2.0, [8, 10, 9], [8, 8, 8])
    lowres.next_stage = "3d_cascade_fullres"
    plans = Plans(DATASET, HardwareInfo("cpu"), 1.0,
                  {"3d_fullres": fullres, "3d_lowres": lowres, "3d_cascade_fullres": cascade_plan(fullres, 2)},
                  [ChannelStats(0.0, 1.0, 0.0, -1.0, 1.0, -1.0, 1.0)])
    location = DatasetLocation(DATASET, raw, data_root.preprocessed / DATASET, data_root.results / DATASET)
    save_plans(plans, location.preprocessed)
    summary = preprocess_dataset(location, ["3d_lowres", "3d_cascade_fullres"], workers=1)
    assert summary.ok
    return location
