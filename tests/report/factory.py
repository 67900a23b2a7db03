"""A small finished run in the real on-disk format, built without training a network.

The fingerprint, plans, validation scores and find-best's choice are computed by the real stages; the fold
folders hold a real training config, an epoch log written by the trainer's own writer, tiny real weights and
validation predictions made by eroding the references (so that Dice varies from case to case).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from autounet.dataset.spec import load_spec
from autounet.evaluation.find_best import find_best
from autounet.evaluation.folders import evaluate_folders
from autounet.evaluation.metrics import classes_from_spec
from autounet.io import read_label, write_segmentation
from autounet.network import build_network
from autounet.paths import DataRoot, DatasetLocation, locate_dataset
from autounet.planning.planner import plan_dataset
from autounet.training.checkpoint import EpochRecord
from autounet.training.config import TrainingConfig
from autounet.training.run_log import write_log_csv
from autounet.utils.serde import to_json_value


def _eroded(labels: np.ndarray, steps: int) -> np.ndarray:
    """``labels`` with its foreground shrunk by ``steps`` voxels in-plane (a cheap, imperfect 'prediction')."""
    out = labels.copy()
    for _ in range(steps):
        inside = out > 0
        core = inside.copy()
        for axis in (-1, -2):
            core &= np.roll(inside, 1, axis) & np.roll(inside, -1, axis)
        out[inside & ~core] = 0
    return out


def write_fold(location: DatasetLocation, configuration: str, fold: int, cases: list[str], epochs: int = 4,
               finished: bool = True, validated: bool = True, worse_by: int = 0) -> Path:
    """One fold folder of ``configuration`` with ``cases`` as its validation cases (predictions eroded by 0 to 2
    voxels, plus ``worse_by``)."""
    spec = load_spec(location.raw)
    plans_file = location.preprocessed / "plans.json"
    plans = json.loads(plans_file.read_text())
    folder = location.results / configuration / f"fold_{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(plans_file.read_text())
    (folder / "dataset.json").write_text((location.raw / "dataset.json").read_text())
    config = TrainingConfig.from_budget("quick", configuration=configuration, fold=fold, device="cpu")
    (folder / "training_config.json").write_text(json.dumps(to_json_value(config)))
    names = [spec.label_name(v) for v in spec.foreground_labels]
    records = [EpochRecord(e, 1.2 / (e + 1), 1.3 / (e + 1), [0.2 * e + 0.1 * i for i in range(len(names))],
                           0.15 * e, 1e-3 * (1 - e / epochs), 2.5) for e in range(epochs)]
    write_log_csv(records, names, folder / "log.csv")
    if finished:
        from autounet.network import NetworkConfig
        from autounet.utils.serde import load_dataclass

        network = load_dataclass(NetworkConfig, plans["configurations"][configuration]["network"])
        save_file(build_network(network).state_dict(), str(folder / "model_final.safetensors"))
    if validated:
        validation = folder / "validation"
        for index, case in enumerate(cases):
            reference, geometry = read_label(location.raw / "labelsTr" / f"{case}{spec.file_ending}")
            write_segmentation(_eroded(reference, index % 3 + worse_by), geometry, validation / f"{case}{spec.file_ending}")
        evaluate_folders(location.raw / "labelsTr", validation, classes_from_spec(spec), spec.file_ending,
                         workers=1, output_dir=validation, ignore_label=spec.ignore_label)
    return folder


def make_run(root: Path, raw: Path, configurations: str | list[str], folds: int = 2,
             choose: bool = True) -> DatasetLocation:
    """Fingerprint and plan ``raw`` under ``root``, write ``folds`` fold folders per configuration (each one's
    predictions a little worse than the previous one's) and (``choose``) run find-best."""
    configurations = [configurations] if isinstance(configurations, str) else configurations
    location = locate_dataset(str(raw), DataRoot.under(root))
    plan_dataset(location, gpu_memory_gb=8.0, device="cpu", configurations=configurations, workers=1)
    spec = load_spec(raw)
    cases = sorted(p.name[: -len(spec.file_ending)] for p in (raw / "labelsTr").iterdir())
    for rank, configuration in enumerate(configurations):
        for fold in range(folds):
            write_fold(location, configuration, fold, cases[fold::folds], worse_by=rank)
    if choose:
        find_best(location, workers=1)
    return location
