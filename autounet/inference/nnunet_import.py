"""Installing models trained by nnU-Net v2 as autounet models that ``autounet predict`` runs.

An nnU-Net results folder ``<Trainer>__<Plans>__<configuration>/`` holds plans.json, dataset.json and
``fold_K/checkpoint_final.pth`` (and/or ``checkpoint_best.pth``). Its plans become an autounet plan with the same
target spacing, patch, normalisation, resampling orders and network (PlainConvUNet or ResidualEncoderUNet, whose
layers autounet's U-Nets have one for one); each checkpoint's weights are renamed and saved as safetensors in
``<results>/<dataset>/<configuration>/fold_K/``.

nnU-Net may train on axes in another order than the images' (``transpose_forward``); the network is then
turned around instead (kernels, strides and patch permuted), which computes the same function on the images'
own axes.

Example:
    >>> source = Path("nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres")
    >>> installed = import_nnunet_model([source], Path("results"))  # doctest: +SKIP
    >>> installed[0].folds                                          # doctest: +SKIP
    ['0', '1', '2', '3', '4']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import UserError
from autounet.fingerprint.model import ChannelStats
from autounet.inference.model_folder import TRAINING_CONFIG_FILE, weights_file
from autounet.inference.nnunet_checkpoint import load_nnunet_checkpoint
from autounet.inference.nnunet_names import is_alias, nnunet_parameter_names
from autounet.network.config import NetworkConfig
from autounet.planning.plans import ConfigurationPlan, HardwareInfo, Plans, ResamplingPlan
from autounet.utils.atomic import atomic_path, write_json
from autounet.utils.serde import to_json_value

NORMALIZATIONS = {"ZScoreNormalization": "zscore", "CTNormalization": "ct", "NoNormalization": "none",
                  "RescaleTo01Normalization": "rescale_to_0_1", "RGBTo0_1Normalization": "rgb_to_0_1"}
ARCHITECTURES = {"PlainConvUNet": "plain", "ResidualEncoderUNet": "residual_encoder"}
CHECKPOINT_FILES = {"final": "checkpoint_final.pth", "best": "checkpoint_best.pth"}
RESAMPLING_FUNCTION = "resample_data_or_seg_to_shape"
NORM_EPS = 1e-5
IMPORT_KEY = "nnunet_import"
"""Key in plans.json's ``extra`` that records where an installed model came from."""


@dataclass
class NnunetFolder:
    """An nnU-Net v2 results folder ``<Trainer>__<Plans>__<configuration>`` and what it names."""

    folder: Path
    trainer: str
    plans_name: str
    configuration: str


@dataclass
class InstalledModel:
    """One nnU-Net configuration installed as an autounet configuration folder."""

    dataset: str
    configuration: str
    folder: Path
    folds: list[str]
    checkpoints: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


def parse_results_folder(folder: Path) -> NnunetFolder:
    """The trainer, plans and configuration named by an nnU-Net results folder; a clear error if it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder.")
    parts = folder.name.split("__")
    if len(parts) != 3 or not all(parts):
        raise UserError(f"{folder}: not an nnU-Net v2 results folder (its name must be "
                        f"<Trainer>__<Plans>__<configuration>, e.g. nnUNetTrainer__nnUNetPlans__3d_fullres).")
    for name in ("plans.json", "dataset.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing; an nnU-Net results folder holds plans.json and dataset.json.")
    return NnunetFolder(folder, *parts)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable JSON ({error}).") from error
    if not isinstance(data, dict):
        raise UserError(f"{path}: must hold a JSON object.")
    return data


def nnunet_configuration(plans: dict, name: str, where: Path) -> dict:
    """Configuration ``name`` of nnU-Net plans with its ``inherits_from`` chain resolved (each level's keys
    replace its parent's, as nnU-Net resolves them)."""
    configurations = plans.get("configurations", {})
    chain: list[str] = []
    while name not in chain:
        if name not in configurations:
            raise UserError(f"{where}: configuration '{name}' is not in its plans (found: "
                            f"{', '.join(configurations) or 'none'}).")
        chain.append(name)
        parent = configurations[name].get("inherits_from")
        if not parent:
            break
        name = parent
    else:
        raise UserError(f"{where}: configurations inherit in a cycle ({' -> '.join(chain + [name])}).")
    resolved: dict = {}
    for level in reversed(chain):
        resolved.update(configurations[level])
    return resolved


def _class_name(path: str | None) -> str:
    return (path or "").rsplit(".", 1)[-1]


def _architecture(config: dict, where: Path) -> tuple[str, dict]:
    """The network class name and its keyword arguments, from current plans or the older v2 format."""
    if "architecture" in config:
        arch = config["architecture"]
        return _class_name(arch.get("network_class_name")), dict(arch.get("arch_kwargs", {}))
    if "UNet_class_name" in config:  # nnU-Net v2 plans written before the 'architecture' entry existed
        strides = config["pool_op_kernel_sizes"]
        dims = len(config["patch_size"])
        features = [min(config["UNet_base_num_features"] * 2 ** s, config["unet_max_num_features"])
                    for s in range(len(strides))]
        return config["UNet_class_name"], dict(
            n_stages=len(strides), features_per_stage=features, conv_op=f"torch.nn.Conv{dims}d",
            kernel_sizes=config["conv_kernel_sizes"], strides=strides,
            n_conv_per_stage=config["n_conv_per_stage_encoder"],
            n_conv_per_stage_decoder=config["n_conv_per_stage_decoder"], conv_bias=True,
            norm_op=f"torch.nn.InstanceNorm{dims}d", norm_op_kwargs={"eps": NORM_EPS, "affine": True},
            nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True})
    raise UserError(f"{where}: its plans name no network architecture.")


def _unsupported(where: Path, what: str) -> UserError:
    return UserError(f"{where}: unsupported: {what}; autounet installs nnU-Net's PlainConvUNet and "
                     f"ResidualEncoderUNet with instance norm and (leaky) ReLU.")


def translate_network(config: dict, in_channels: int, num_classes: int, axes: Sequence[int],
                      where: Path) -> NetworkConfig:
    """autounet's NetworkConfig for an nnU-Net configuration, on the image axes ``axes`` of nnU-Net's order
    (``axes[a]``: the position in nnU-Net's order of the network's spatial axis ``a``)."""
    name, kwargs = _architecture(config, where)
    if name not in ARCHITECTURES:
        raise _unsupported(where, f"network {name or '(none)'}")
    dims = len(config["patch_size"])
    conv = _class_name(kwargs.get("conv_op"))
    if conv != f"Conv{dims}d":
        raise _unsupported(where, f"convolution {conv} with a {dims}D patch")
    norm = _class_name(kwargs.get("norm_op"))
    norm_kwargs = kwargs.get("norm_op_kwargs") or {}
    if norm != f"InstanceNorm{dims}d" or not norm_kwargs.get("affine", False) or \
            abs(float(norm_kwargs.get("eps", NORM_EPS)) - NORM_EPS) > 1e-12:
        raise _unsupported(where, f"normalisation {norm or 'none'} {norm_kwargs}")
    nonlin = _class_name(kwargs.get("nonlin"))
    if nonlin == "LeakyReLU":
        slope = float((kwargs.get("nonlin_kwargs") or {}).get("negative_slope", 0.01))
    elif nonlin == "ReLU":
        slope = 0.0
    else:
        raise _unsupported(where, f"activation {nonlin or 'none'}")
    if name == "ResidualEncoderUNet":
        if _class_name(kwargs.get("block")) not in ("", "BasicBlockD"):
            raise _unsupported(where, f"residual block {_class_name(kwargs.get('block'))}")
        stem = kwargs.get("stem_channels")
        if stem not in (None, kwargs["features_per_stage"][0]):
            raise _unsupported(where, f"stem width {stem} different from the first stage's")
        per_stage = kwargs["n_blocks_per_stage"]
    else:
        per_stage = kwargs["n_conv_per_stage"]
    stages = len(kwargs["features_per_stage"])

    def per_axis(values) -> list[list[int]]:
        values = [list(v) if isinstance(v, (list, tuple)) else [v] * dims for v in values]
        return [[int(v[axes[a]]) for a in range(dims)] for v in values]

    decoder = kwargs["n_conv_per_stage_decoder"]
    decoder = list(decoder) if isinstance(decoder, (list, tuple)) else [decoder] * (stages - 1)
    return NetworkConfig(
        conv_dim=dims, in_channels=in_channels, num_classes=num_classes,
        features_per_stage=[int(f) for f in kwargs["features_per_stage"]],
        kernel_sizes=per_axis(kwargs["kernel_sizes"]), strides=per_axis(kwargs["strides"]),
        n_conv_per_stage=[int(n) for n in (per_stage if isinstance(per_stage, (list, tuple))
                                           else [per_stage] * stages)],
        # nnU-Net lists decoder stages from the deepest up; autounet by resolution, highest first.
        n_conv_per_stage_decoder=[int(n) for n in reversed(decoder)],
        negative_slope=slope, architecture=ARCHITECTURES[name])


def network_axes(transpose_forward: Sequence[int], is_2d: bool, where: Path) -> list[int]:
    """For each spatial axis of the network run on the images' own axes, its position in nnU-Net's order."""
    forward = [int(a) for a in transpose_forward]
    backward = [int(i) for i in np.argsort(forward)]
    if not is_2d:
        return backward
    if forward[0] != 0:
        raise _unsupported(where, f"a 2d configuration trained on slices along image axis {forward[0]} "
                                  f"(transpose_forward {forward}); autounet's 2d slices along the first axis")
    return [b - 1 for b in backward[1:]]


def _resampling(config: dict, where: Path) -> ResamplingPlan:
    for key in ("resampling_fn_data", "resampling_fn_seg", "resampling_fn_probabilities"):
        if config.get(key, RESAMPLING_FUNCTION) != RESAMPLING_FUNCTION:
            raise _unsupported(where, f"resampling function {config[key]}")
    data = config.get("resampling_fn_data_kwargs") or {}
    seg = config.get("resampling_fn_probabilities_kwargs") or config.get("resampling_fn_seg_kwargs") or {}
    for kwargs in (data, seg):
        if kwargs.get("force_separate_z") is not None:
            raise _unsupported(where, "resampling with force_separate_z set")
    return ResamplingPlan(order_data=int(data.get("order", 3)), order_seg=int(seg.get("order", 1)),
                          order_data_z=int(data.get("order_z", 0)), order_seg_z=int(seg.get("order_z", 0)))


def _stats(plans: dict, channels: int, where: Path) -> list[ChannelStats]:
    found = plans.get("foreground_intensity_properties_per_channel", {})
    stats = []
    for c in range(channels):
        entry = found.get(str(c))
        if entry is None:
            raise UserError(f"{where}: plans.json has no foreground intensity properties for channel {c}.")
        stats.append(ChannelStats(**{k: float(entry[k]) for k in (
            "mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")}))
    return stats


def translate_plans(plans: dict, dataset: dict, configuration: str, network: NetworkConfig,
                    where: Path) -> Plans:
    """autounet Plans holding one configuration translated from nnU-Net's ``plans`` and ``dataset`` (dataset.json)."""
    config = nnunet_configuration(plans, configuration, where)
    dims = len(config["patch_size"])
    is_2d = dims == 2
    axes = network_axes(plans.get("transpose_forward", [0, 1, 2]), is_2d, where)
    schemes = []
    for scheme in config["normalization_schemes"]:
        if scheme not in NORMALIZATIONS:
            raise _unsupported(where, f"normalisation scheme {scheme}")
        schemes.append(NORMALIZATIONS[scheme])
    spacing = [float(config["spacing"][a]) for a in axes]
    median = [int(round(float(config["median_image_size_in_voxels"][a]))) for a in axes]
    if is_2d:  # a 2d plan keeps each case's own through-plane spacing; the median is only informative
        spacing = [float(plans.get("original_median_spacing_after_transp", [1.0])[0])] + spacing
        median = [int(round(float(plans.get("original_median_shape_after_transp", [1])[0])))] + median
    plan = ConfigurationPlan(
        name=configuration, data_identifier=f"nnunet_{configuration}", is_2d=is_2d, spacing=spacing,
        median_shape=median, patch_size=[int(config["patch_size"][a]) for a in axes],
        batch_size=int(config.get("batch_size", 2)), network=network, normalization=schemes,
        use_mask_for_norm=[bool(u) for u in config.get("use_mask_for_norm", [False] * len(schemes))],
        resampling=_resampling(config, where), previous_stage=config.get("previous_stage"),
        next_stage=config.get("next_stage"))
    return Plans(dataset_name=str(plans.get("dataset_name", dataset.get("name", "imported"))),
                 hardware=HardwareInfo(device="unknown", name="trained by nnU-Net"), memory_budget_gb=0.0,
                 configurations={configuration: plan}, intensity_stats=_stats(plans, len(schemes), where))


def _permuted(tensor, dims: int, axes: Sequence[int]):
    """A kernel ``(out, in, *spatial)`` in nnU-Net's axis order with its spatial axes put in the images' order."""
    if tensor.ndim != 2 + dims or list(axes) == list(range(dims)):
        return tensor
    return tensor.permute(0, 1, *[2 + a for a in axes]).contiguous()


def autounet_state(weights: dict, network: NetworkConfig, axes: Sequence[int], conv_bias: bool,
                   where: Path) -> dict:
    """nnU-Net ``network_weights`` renamed (and turned to the images' axes) into autounet's state dict."""
    import torch

    from autounet.network import build_network

    table = nnunet_parameter_names(network)
    expected = build_network(network, initialize=False).state_dict()
    missing = [name for name in table if name not in weights and not (not conv_bias and name.endswith("conv.bias"))
               and not (not conv_bias and name.startswith("decoder.transpconvs.") and name.endswith(".bias"))]
    unexpected = [name for name in weights if name not in table and not is_alias(name)]
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise UserError(f"{where}: unsupported: its network weights do not fit the "
                        f"{'residual-encoder' if network.architecture == 'residual_encoder' else 'plain'} U-Net its "
                        f"plans describe ({len(missing)} missing, {len(unexpected)} unexpected, e.g. '{first}'); "
                        f"the trainer probably builds another network.")
    state = {}
    for theirs, ours in table.items():
        if theirs in weights:
            state[ours] = _permuted(weights[theirs].detach().to(torch.float32), network.conv_dim, axes)
        else:  # trained without conv biases: a zero bias computes the same
            state[ours] = torch.zeros_like(expected[ours])
        if tuple(state[ours].shape) != tuple(expected[ours].shape):
            raise UserError(f"{where}: unsupported: weight '{theirs}' has shape {tuple(weights[theirs].shape)}, "
                            f"but the network its plans describe needs {tuple(expected[ours].shape)}.")
    return state


def _fold_folders(folder: Path, folds: Sequence[str] | None) -> list[Path]:
    found = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("fold_")),
                   key=lambda p: (0, int(p.name[5:])) if p.name[5:].isdigit() else (1, p.name[5:]))
    if folds is not None:
        by_label = {p.name[5:]: p for p in found}
        missing = [str(f) for f in folds if str(f) not in by_label]
        if missing:
            raise UserError(f"{folder}: has no fold(s) {', '.join(missing)} (found: "
                            f"{', '.join(by_label) or 'none'}).")
        found = [by_label[str(f)] for f in folds]
    with_checkpoints = [p for p in found if any((p / f).is_file() for f in CHECKPOINT_FILES.values())]
    if folds is not None and len(with_checkpoints) < len(found):
        empty = next(p for p in found if p not in with_checkpoints)
        raise UserError(f"{empty}: has neither checkpoint_final.pth nor checkpoint_best.pth.")
    if not with_checkpoints:
        raise UserError(f"{folder}: holds no fold_K folder with checkpoint_final.pth or checkpoint_best.pth.")
    return with_checkpoints


def _mirroring_note(checkpoint: dict, dims: int) -> str | None:
    axes = checkpoint.get("inference_allowed_mirroring_axes", tuple(range(dims)))
    if axes is not None and len(tuple(axes)) == dims:
        return None
    described = "no axis" if not axes else f"only axes {tuple(axes)}"
    return (f"nnU-Net mirrors {described} for test-time augmentation of this model; autounet's TTA mirrors every "
            f"axis (pass --no-tta to autounet predict to skip mirroring).")


def install_nnunet_configuration(source: Path, results: Path, folds: Sequence[str] | None = None,
                                 overwrite: bool = False) -> InstalledModel:
    """Install one nnU-Net results folder into ``results/<dataset>/<configuration>/`` (see the module docstring)."""
    from safetensors.torch import save_file

    named = parse_results_folder(source)
    plans_json, dataset_json = _read_json(named.folder / "plans.json"), _read_json(named.folder / "dataset.json")
    config = nnunet_configuration(plans_json, named.configuration, named.folder / "plans.json")
    is_2d = len(config["patch_size"]) == 2
    axes = network_axes(plans_json.get("transpose_forward", [0, 1, 2]), is_2d, named.folder / "plans.json")
    conv_bias = bool(_architecture(config, named.folder)[1].get("conv_bias", True))
    fold_folders = _fold_folders(named.folder, folds)
    dataset = str(plans_json.get("dataset_name") or named.folder.parent.name)
    target = Path(results) / dataset / named.configuration
    notes: list[str] = []
    converted: list[tuple[Path, str, dict]] = []
    plans = None
    for fold_folder in fold_folders:
        for checkpoint_name, file_name in CHECKPOINT_FILES.items():
            path = fold_folder / file_name
            if not path.is_file():
                continue
            checkpoint = load_nnunet_checkpoint(path)
            trainer = str(checkpoint.get("trainer_name") or named.trainer)
            weights = checkpoint["network_weights"]
            first = "encoder.stem.convs.0.conv.weight" if "encoder.stem.convs.0.conv.weight" in weights else \
                "encoder.stages.0.0.convs.0.conv.weight"
            heads = sorted((k for k in weights if k.startswith("decoder.seg_layers.") and k.endswith(".weight")),
                           key=lambda k: int(k.split(".")[2]))
            if first not in weights or not heads:
                raise UserError(f"{path}: unsupported: trainer {trainer} stored a network that is not a "
                                f"PlainConvUNet or ResidualEncoderUNet (no '{first}').")
            network = translate_network(config, int(weights[first].shape[1]), int(weights[heads[-1]].shape[0]),
                                        axes, named.folder / "plans.json")
            plans = translate_plans(plans_json, dataset_json, named.configuration, network,
                                    named.folder / "plans.json")
            plans.extra[IMPORT_KEY] = {"source": str(named.folder.resolve()), "trainer": trainer,
                                       "plans": named.plans_name,
                                       "transpose_forward": list(plans_json.get("transpose_forward", [0, 1, 2])),
                                       "inference_allowed_mirroring_axes":
                                           to_json_value(checkpoint.get("inference_allowed_mirroring_axes"))}
            # Predicted as nnU-Net predicts: images smaller than the patch padded to the whole patch, tiles
            # blended with nnU-Net's Gaussian, the folds' logits averaged and resampled back as logits (autounet's
            # own models differ in each).
            plans.extra["inference"] = {"pad_to_patch": True, "fold_average": "logits", "importance": "nnunet",
                                        "restored_as": "logits"}
            _check_outputs(network, dataset_json, named.folder / "dataset.json")
            converted.append((fold_folder, checkpoint_name, autounet_state(weights, network, axes, conv_bias, path)))
            note = _mirroring_note(checkpoint, network.conv_dim)
            if note and note not in notes:
                notes.append(note)
    if plans is None:
        raise UserError(f"{named.folder}: no checkpoint to install.")
    if not overwrite:
        for fold_folder, checkpoint_name, _ in converted:
            existing = weights_file(target / fold_folder.name, checkpoint_name)
            if existing.exists():
                raise UserError(f"{existing}: already installed; pass --overwrite to replace it.")
    labels: list[str] = []
    checkpoints: list[str] = []
    for fold_folder, checkpoint_name, state in converted:
        out = target / fold_folder.name
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "plans.json", plans.to_json())
        write_json(out / "dataset.json", dataset_json)
        with atomic_path(weights_file(out, checkpoint_name)) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        label = fold_folder.name[5:]
        if label not in labels:
            labels.append(label)
        if checkpoint_name not in checkpoints:
            checkpoints.append(checkpoint_name)
    # training_config.json marks a fold folder as complete, so it comes after the weights; where the model came
    # from is in plans.json (extra.nnunet_import).
    for label in labels:
        write_json(target / f"fold_{label}" / TRAINING_CONFIG_FILE,
                   {"configuration": named.configuration, "fold": int(label) if label.isdigit() else label})
    return InstalledModel(dataset, named.configuration, target, labels, checkpoints, named.folder.name, notes)


def _check_outputs(network: NetworkConfig, dataset_json: dict, where: Path) -> None:
    labels = dataset_json.get("labels", {})
    regions = any(isinstance(v, list) for v in labels.values())
    expected = sum(1 for k in labels if k not in ("background", "ignore")) + (0 if regions else 1)
    if network.num_classes != expected:
        raise UserError(f"{where}: the network has {network.num_classes} outputs but the labels call for "
                        f"{expected}.")


def _check_cascades(sources: Sequence[Path], results: Path) -> None:
    """A cascade's second stage needs its first stage among ``sources`` or already installed; checked before
    anything is written."""
    named = [parse_results_folder(Path(s)) for s in sources]
    given = {n.configuration for n in named}
    for entry in named:
        plans = _read_json(entry.folder / "plans.json")
        previous = nnunet_configuration(plans, entry.configuration, entry.folder / "plans.json").get("previous_stage")
        dataset = str(plans.get("dataset_name") or entry.folder.parent.name)
        installed = any((Path(results) / dataset / str(previous)).glob(f"fold_*/{TRAINING_CONFIG_FILE}"))
        if previous and previous not in given and not installed:
            raise UserError(f"{entry.folder}: cascade stage '{entry.configuration}' needs its first stage "
                            f"'{previous}'; give that nnU-Net folder to --from-nnunet too.")


def import_nnunet_model(sources: Sequence[Path], results: Path, folds: Sequence[str] | None = None,
                        overwrite: bool = False) -> list[InstalledModel]:
    """Install nnU-Net results folders (one per configuration; a cascade's second stage needs its first
    stage among them or already installed) into an autounet results folder; see the module docstring."""
    _check_cascades(sources, results)
    return [install_nnunet_configuration(Path(s), results, folds, overwrite) for s in sources]
