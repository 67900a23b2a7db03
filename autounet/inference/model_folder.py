"""Trained models on disk: a dataset's results folder, its configuration folders and their fold folders.

Layout written by training::

    results/<DatasetXXX_Name>/<configuration>/fold_<K>/
        plans.json  dataset.json  training_config.json
        model_final.safetensors  model_best.safetensors  model_latest.safetensors
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset.spec import DatasetSpec, load_spec
from autounet.errors import MissingArtifactError, UserError
from autounet.planning.plans import ConfigurationPlan, Plans, load_plans
from autounet.utils.serde import load_dataclass

CHECKPOINTS = ("final", "best", "latest")
TRAINING_CONFIG_FILE = "training_config.json"
FOLD_PREFIX = "fold_"


@dataclass
class FoldIdentity:
    """The part of a fold's training_config.json inference needs: which configuration and fold it trained."""

    configuration: str
    fold: int | str


@dataclass(frozen=True)
class TrainedFold:
    """One trained fold: its folder and the weights file of the chosen checkpoint."""

    folder: Path
    configuration: str
    fold: str
    weights: Path


@dataclass
class TrainedConfiguration:
    """A configuration's trained folds with the plans and dataset.json they were trained with."""

    name: str
    plans: Plans
    spec: DatasetSpec
    folds: list[TrainedFold]
    unfinished: list[Path] = field(default_factory=list)
    """Fold folders left out because they lack the checkpoint's weights (still training, or copied partly)."""

    @property
    def plan(self) -> ConfigurationPlan:
        return self.plans.configuration(self.name)


def weights_file(folder: Path, checkpoint: str) -> Path:
    """The safetensors file of ``checkpoint`` (final, best or latest) in a fold folder."""
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint '{checkpoint}' is unknown; choose one of {', '.join(CHECKPOINTS)}.")
    return Path(folder) / f"model_{checkpoint}.safetensors"


def is_fold_folder(folder: Path) -> bool:
    return (Path(folder) / TRAINING_CONFIG_FILE).is_file()


def _fold_sort_key(folder: Path) -> tuple[int, int | str]:
    label = folder.name[len(FOLD_PREFIX):]
    return (0, int(label)) if label.isdigit() else (1, label)


def fold_folders(configuration_folder: Path) -> list[Path]:
    """The fold folders (``fold_0`` ... ``fold_all``) of a configuration folder, in fold order."""
    folder = Path(configuration_folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(FOLD_PREFIX) and is_fold_folder(p)]
    return sorted(found, key=_fold_sort_key)


def trained_configurations(dataset_results: Path) -> list[str]:
    """Names of the configuration folders under a dataset's results folder that hold at least one fold."""
    folder = Path(dataset_results)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and fold_folders(p))


def read_fold_identity(folder: Path) -> FoldIdentity:
    """The configuration and fold named in ``folder/training_config.json``."""
    path = Path(folder) / TRAINING_CONFIG_FILE
    try:
        return load_dataclass(FoldIdentity, json.loads(path.read_text()), partial=True)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path}: unreadable training configuration ({error!r}).") from error


def trained_fold(folder: Path, checkpoint: str = "final") -> TrainedFold:
    """A fold folder with its ``checkpoint`` weights; a clear error when the weights are not there."""
    folder = Path(folder)
    identity = read_fold_identity(folder)
    weights = weights_file(folder, checkpoint)
    if not weights.is_file():
        present = sorted(p.name for p in folder.glob("model_*.safetensors"))
        hint = f" (present: {', '.join(present)}; choose with --checkpoint)" if present else \
            "; training has not finished or the weights were not copied"
        raise MissingArtifactError(f"{folder}: has no weights file {weights.name}{hint}.")
    return TrainedFold(folder, identity.configuration, str(identity.fold), weights)


def _select_folds(folders: list[Path], folds: list[int | str] | None, where: Path) -> list[Path]:
    if folds is None:
        return folders
    by_label = {f.name[len(FOLD_PREFIX):]: f for f in folders}
    missing = [str(f) for f in folds if str(f) not in by_label]
    if missing:
        raise MissingArtifactError(f"{where}: fold(s) {', '.join(missing)} not trained (found: "
                                   f"{', '.join(by_label) or 'none'}).")
    return [by_label[str(f)] for f in folds]


def load_trained_configuration(model_dir: Path, folds: list[int | str] | None = None,
                               checkpoint: str = "final") -> TrainedConfiguration:
    """The trained folds in ``model_dir``: a configuration folder (all or the chosen folds) or one fold folder.

    Example:
        >>> trained = load_trained_configuration(Path("results/Dataset004_Hippocampus/3d_fullres"))  # doctest: +SKIP
        >>> [f.fold for f in trained.folds]                                                           # doctest: +SKIP
        ['0', '1', '2', '3', '4']
    """
    model_dir = Path(model_dir)
    unfinished: list[Path] = []
    if is_fold_folder(model_dir):
        folders = [model_dir]
    else:
        folders = _select_folds(fold_folders(model_dir), folds, model_dir)
        if folds is None:
            # With all folds asked for, folds still training are left out rather than failing the prediction.
            unfinished = [f for f in folders if not weights_file(f, checkpoint).is_file()]
            folders = [f for f in folders if f not in unfinished] or folders
    if not folders:
        raise MissingArtifactError(f"{model_dir}: holds no trained fold folders (fold_0, ... with "
                                   f"{TRAINING_CONFIG_FILE}); train first or point to a configuration folder.")
    trained = [trained_fold(folder, checkpoint) for folder in folders]
    names = {fold.configuration for fold in trained}
    if len(names) != 1:
        raise UserError(f"{model_dir}: folds of different configurations ({', '.join(sorted(names))}) found.")
    first = folders[0]
    plans = load_plans(first / "plans.json")
    spec = load_spec(first)
    name = names.pop()
    plans.configuration(name)
    return TrainedConfiguration(name, plans, spec, trained, unfinished)


def load_network(fold: TrainedFold, plan: ConfigurationPlan, device):
    """The fold's U-Net with its weights, in eval mode on ``device``."""
    import torch
    from safetensors.torch import load_file

    from autounet.network import build_network

    network = build_network(plan.network)
    try:
        state = load_file(str(fold.weights), device="cpu")
        network.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as error:
        raise UserError(f"{fold.weights}: weights do not fit the network planned for '{plan.name}' "
                        f"({str(error).splitlines()[0]}).") from error
    return network.to(torch.device(device)).eval()
