"""Fine-tuning: start a fold from a trained model's weights instead of from random ones.

The model may be a fold folder (``results/DATASET/CONFIG/fold_K``), a configuration folder (its fold of the same
number is taken, else ``fold_all``, else the first), an autounet model zip (``autounet export-model``) or an nnU-Net
v2 results folder (``<Trainer>__<Plans>__<configuration>``, translated as ``install-model --from-nnunet`` does).
Every weight whose name and shape match the new network is loaded; the segmentation heads are trained afresh when
the number of outputs differs; any other difference (input channels, stages, features, kernels) is refused in one
sentence, since those weights would not mean the same thing.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from autounet.errors import UserError
from autounet.inference.model_folder import fold_folders, is_fold_folder
from autounet.planning.plans import ConfigurationPlan

HEAD_PREFIX = "heads."
"""The segmentation heads (one per deep-supervision output): the only weights that may differ in shape."""


@dataclass
class PretrainedLoad:
    """What was taken from the model: loaded weight tensors, and the heads started afresh."""

    source: Path
    loaded: int
    fresh_heads: list[str]

    def describe(self) -> str:
        fresh = (f"; the {len(self.fresh_heads)} segmentation head tensor(s) start afresh (another number of "
                 f"outputs)" if self.fresh_heads else "")
        return f"fine-tuning from {self.source}: {self.loaded} weight tensor(s) loaded{fresh}"


def _pick_fold(configuration_folder: Path, fold: int | str) -> Path:
    folds = fold_folders(configuration_folder)
    if not folds:
        raise UserError(f"{configuration_folder}: holds no trained fold to fine-tune from.")
    by_name = {folder.name: folder for folder in folds}
    return by_name.get(f"fold_{fold}") or by_name.get("fold_all") or folds[0]


def _configuration_folders(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("*/*/fold_*") if is_fold_folder(p))


def _fold_of(source: Path, configuration: str, fold: int | str, scratch: Path) -> Path:
    """The fold folder ``source`` names (unpacking a zip or translating nnU-Net into ``scratch``), or ``source``
    itself when it is a weights file."""
    if source.is_file() and zipfile.is_zipfile(source):
        from autounet.inference.export import install_model

        install_model(source, scratch)
        folders = _configuration_folders(scratch)
        chosen = [f for f in folders if f.name == configuration] or folders
        if not chosen:
            raise UserError(f"{source}: the model zip holds no trained fold.")
        source = chosen[0]
    elif source.is_dir() and (source / "plans.json").is_file() and not is_fold_folder(source) and any(
            (folder / "checkpoint_final.pth").is_file() or (folder / "checkpoint_best.pth").is_file()
            for folder in source.glob("fold_*")):
        from autounet.inference.nnunet_import import install_nnunet_configuration

        install_nnunet_configuration(source, scratch)
        source = _configuration_folders(scratch)[0]
    if source.is_dir() and not is_fold_folder(source):
        source = _pick_fold(source, fold)
    return source


def _weights_of(source: Path, configuration: str, fold: int | str, scratch: Path) -> Path:
    """The safetensors file of the fold ``source`` names (see :func:`_fold_of`)."""
    source = _fold_of(source, configuration, fold, scratch)
    weights = source / "model_final.safetensors" if source.is_dir() else source
    if not weights.is_file():
        raise UserError(f"{source}: no model_final.safetensors to fine-tune from (a fold folder, a configuration "
                        f"folder, a model zip or an nnU-Net results folder is expected).")
    return weights


def load_pretrained(network: torch.nn.Module, source: Path, configuration: str, fold: int | str) -> PretrainedLoad:
    """Load the matching weights of the model at ``source`` into ``network`` (in place); see the module docstring.

    Example:
        >>> load_pretrained(net, Path("results/Dataset004_Hippocampus/2d/fold_0"), "2d", 0).loaded  # doctest: +SKIP
        42
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: no such model to fine-tune from.")
    with tempfile.TemporaryDirectory(prefix="autounet_pretrained_") as scratch:
        weights_path = _weights_of(source, configuration, fold, Path(scratch))
        weights = load_file(str(weights_path))
    own = network.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    mismatched = sorted(name for name in set(own) & set(weights) if own[name].shape != weights[name].shape)
    body = [name for name in missing + unexpected + mismatched if not name.startswith(HEAD_PREFIX)]
    if body:
        name = body[0]
        what = (f"has {tuple(weights[name].shape)} where the plan's network has {tuple(own[name].shape)}"
                if name in mismatched else "is missing there" if name in missing else "has no place in the plan's")
        raise UserError(f"{weights_path}: its network differs from the plan's beyond the segmentation heads "
                        f"({name} {what}{' network' if name in unexpected else ''}; {len(body)} difference(s)); "
                        f"fine-tuning needs the same input channels, stages, features and kernels: plan the dataset "
                        f"with the model's network (autounet plan DATASET --pretrained-plans {source}), preprocess "
                        f"and train the configuration it adds.")
    fresh = sorted(name for name in missing + mismatched)  # the new network's heads that keep their start
    network.load_state_dict({name: weights[name] for name in own if name not in fresh}, strict=False)
    return PretrainedLoad(source, len(own) - len(fresh), fresh)


def freeze_all_but_heads(network: torch.nn.Module, frozen: bool) -> None:
    """Stop (or resume) training every weight but the segmentation heads': they get no gradient, so the optimiser
    leaves them, their momentum and their weight decay alone."""
    for name, parameter in network.named_parameters():
        if not name.startswith(HEAD_PREFIX):
            parameter.requires_grad_(not frozen)


def pretrained_plan(source: Path, configuration: str | None = None) -> tuple[ConfigurationPlan, str]:
    """The plan of the trained model at ``source`` (any form :func:`load_pretrained` takes; ``configuration``
    chooses among several) and the name of the dataset it was trained on, for ``plan --pretrained-plans``.

    Example:
        >>> plan, dataset = pretrained_plan(Path("results/Dataset004_Hippocampus/3d_fullres"))  # doctest: +SKIP
        >>> plan.name, dataset
        ('3d_fullres', 'Dataset004_Hippocampus')
    """
    from autounet.planning.plans import load_plans

    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: no such model to take the plan of.")
    with tempfile.TemporaryDirectory(prefix="autounet_pretrained_") as scratch:
        folder = _fold_of(source, configuration or "", 0, Path(scratch))
        if not (folder.is_dir() and (folder / "plans.json").is_file()):
            raise UserError(f"{source}: holds no plans.json beside its weights (a fold or configuration folder, a "
                            f"model zip or an nnU-Net results folder is expected).")
        plans = load_plans(folder / "plans.json")
        return plans.configuration(folder.parent.name), plans.dataset_name
