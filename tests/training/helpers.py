"""Synthetic inputs for training tests: a data root with dataset.json, hand-made plans and cached cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autounet.fingerprint.model import ChannelStats
from autounet.io.geometry import Geometry
from autounet.network.config import NetworkConfig
from autounet.paths import DatasetLocation, DataRoot
from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans, save_plans
from autounet.preprocessing.store import CaseProperties, CaseStore

DATASET = "Dataset150_TrainTiny"


def blob_case(rng: np.random.Generator, shape: tuple[int, int, int], n_labels: int = 2, radius: float | None = None):
    """A (1, Z, Y, X) image with a bright ball (labels 1 and 2 halves) and its (1, Z, Y, X) int8 labels."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = np.array(shape) / 2 + rng.uniform(-1.5, 1.5, 3)
    radius = radius or max(2.5, min(s for s in shape if s > 1) / 2.5)
    dist = np.sqrt(((z - centre[0]) ** 2 if shape[0] > 1 else 0) + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    seg = np.zeros(shape, np.int8)
    seg[dist < radius] = 1
    if n_labels >= 2:
        seg[(dist < radius) & (x > centre[2])] = 2
    image = (rng.normal(0, 0.3, shape) + 2.0 * (seg > 0) + 1.0 * (seg == 2)).astype(np.float32)
    return image[None], seg[None]


def locations_of(seg: np.ndarray) -> dict[int, np.ndarray]:
    return {int(k): np.argwhere(seg[0] == k)[:, :3] for k in np.unique(seg) if k > 0}


def network_config(conv_dim: int, num_classes: int, features=(4, 8), n_stages: int = 2) -> NetworkConfig:
    features = list(features)[:n_stages]
    kernel = [3] * conv_dim
    strides = [[1] * conv_dim] + [[2] * conv_dim] * (n_stages - 1)
    return NetworkConfig(conv_dim, 1, num_classes, features, [kernel] * n_stages, strides,
                         n_conv_per_stage=[1] * n_stages, n_conv_per_stage_decoder=[1] * (n_stages - 1))


def make_training_root(root: Path, n_cases: int = 4, shape=(12, 16, 16), conv_dim: int = 3, patch=(8, 8, 8),
                       batch_size: int = 2, labels: dict | None = None, seed: int = 0, n_stages: int = 2,
                       extra_dataset_json: dict | None = None, features=(4, 8),
                       radius: float | None = None) -> DatasetLocation:
    """A data root holding raw/<DATASET>/dataset.json, preprocessed plans.json and cached cases (no images)."""
    data_root = DataRoot.under(root)
    labels = labels or {"background": 0, "a": 1, "b": 2}
    raw = data_root.raw / DATASET
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"}, "labels": labels,
                                                  "numTraining": n_cases, "file_ending": ".nii.gz",
                                                  **(extra_dataset_json or {})}))
    name = "2d" if conv_dim == 2 else "3d_fullres"
    identifier = f"autounet_{name}"
    region_count = sum(1 for k in labels if k not in ("background", "ignore"))
    plain = [v for k, v in labels.items() if k not in ("background", "ignore")]
    num_classes = region_count if any(isinstance(v, list) for v in plain) else len(plain) + 1
    plan = ConfigurationPlan(name=name, data_identifier=identifier, is_2d=conv_dim == 2, spacing=[1.0, 1.0, 1.0],
                             median_shape=list(shape), patch_size=list(patch), batch_size=batch_size,
                             network=network_config(conv_dim, num_classes, features, n_stages),
                             normalization=["zscore"], use_mask_for_norm=[False])
    stats = ChannelStats(0.0, 1.0, 0.0, -1.0, 1.0, -1.0, 1.0)
    plans = Plans(DATASET, HardwareInfo("cpu"), 1.0, {name: plan}, [stats])
    preprocessed = data_root.preprocessed / DATASET
    save_plans(plans, preprocessed)
    store = CaseStore(preprocessed / identifier)
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        image, seg = blob_case(rng, shape, radius=radius)
        if "ignore" in labels:
            seg[0, :, :2] = labels["ignore"]
        properties = CaseProperties(f"case_{i:03d}", list(shape), Geometry((1.0, 1.0, 1.0)),
                                    [[0, s] for s in shape], list(shape), list(shape), [1.0, 1.0, 1.0])
        store.save(f"case_{i:03d}", image, seg, properties, locations_of(seg))
    return DatasetLocation(DATASET, raw, preprocessed, data_root.results / DATASET)


def ddp_rank_main(rank: int, location: DatasetLocation, config, port: int, out_folder: Path) -> None:
    """One rank of a 2-process CPU run: train, then save this rank's weights for the test to compare."""
    from safetensors.torch import save_file

    from autounet.training import distributed
    from autounet.training.trainer import train_rank

    distributed.set_spawn_env(rank, 2, port)
    run = train_rank(location, config, False, distributed.ranks_from_env())
    if run.parts.model is not run.net:
        raise AssertionError("the DistributedDataParallel wrapper outlived the process group")
    weights = {k: v.contiguous() for k, v in run.net.state_dict().items()}
    save_file(weights, str(out_folder / f"rank_{rank}.safetensors"))


def make_pipeline_root(root: Path, n_cases: int = 5) -> DatasetLocation:
    """A real raw NIfTI dataset, preprocessed with a hand-made tiny plan: training can validate on raw images."""
    from autounet.preprocessing.dataset import preprocess_dataset
    from tests.conftest import make_nifti_dataset

    data_root = DataRoot.under(root)
    raw = make_nifti_dataset(data_root.raw / PIPELINE_DATASET, n_cases=n_cases, n_test=0)
    plan = ConfigurationPlan(name="3d_fullres", data_identifier="autounet_3d_fullres", is_2d=False,
                             spacing=[1.0, 1.0, 1.0], median_shape=[16, 20, 18], patch_size=[16, 20, 18], batch_size=2,
                             network=network_config(3, 3), normalization=["zscore"], use_mask_for_norm=[False])
    plans = Plans(PIPELINE_DATASET, HardwareInfo("cpu"), 1.0, {"3d_fullres": plan},
                  [ChannelStats(0.0, 1.0, 0.0, -1.0, 1.0, -1.0, 1.0)])
    location = DatasetLocation(PIPELINE_DATASET, raw, data_root.preprocessed / PIPELINE_DATASET,
                               data_root.results / PIPELINE_DATASET)
    save_plans(plans, location.preprocessed)
    preprocess_dataset(location, ["3d_fullres"], workers=1)
    return location


PIPELINE_DATASET = "Dataset151_TrainPipe"
