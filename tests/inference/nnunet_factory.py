"""Small nnU-Net v2 results folders for tests, in nnU-Net's on-disk format (plans.json, dataset.json,
fold_K/checkpoint_final.pth with nnU-Net's parameter names)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from autounet.inference.nnunet_names import nnunet_parameter_names
from autounet.network import NetworkConfig, build_network

DATASET = "Dataset321_Synth"


def arch_kwargs(dims: int, residual: bool, features=(4, 8, 16), blocks=(1, 2, 2)) -> dict:
    """nnU-Net plans' ``arch_kwargs`` for a tiny U-Net (anisotropic first stride, so axis order matters)."""
    stages = len(features)
    strides = [[1] * dims] + [[1] + [2] * (dims - 1)] + [[2] * dims] * (stages - 2)
    kernels = [[1] + [3] * (dims - 1)] + [[3] * dims] * (stages - 1)
    kwargs = {"n_stages": stages, "features_per_stage": list(features), "conv_op": f"torch.nn.modules.conv.Conv{dims}d",
              "kernel_sizes": kernels, "strides": strides, "n_conv_per_stage_decoder": [1, 2][:stages - 1],
              "conv_bias": True, "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
              "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
              "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    if residual:
        kwargs["n_blocks_per_stage"] = list(blocks)
    else:
        kwargs["n_conv_per_stage"] = [2, 1, 2][:stages]
    return kwargs


def nnunet_plans(dims: int, residual: bool = False, transpose=(0, 1, 2), patch=None, spacing=None,
                 normalization: str = "ZScoreNormalization", configuration: str | None = None) -> dict:
    """plans.json in nnU-Net v2's format with one configuration (2d or 3d_fullres) and a 3d_lowres inheriting."""
    configuration = configuration or ("2d" if dims == 2 else "3d_fullres")
    name = "ResidualEncoderUNet" if residual else "PlainConvUNet"
    module = "unet"
    config = {
        "data_identifier": f"nnUNetPlans_{configuration}", "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2, "patch_size": list(patch or ([16, 16] if dims == 2 else [8, 16, 16])),
        "median_image_size_in_voxels": [20.0, 24.0] if dims == 2 else [10.0, 20.0, 24.0],
        "spacing": list(spacing or ([1.0, 1.0] if dims == 2 else [2.0, 1.0, 1.0])),
        "normalization_schemes": [normalization], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {"network_class_name": f"dynamic_network_architectures.architectures.{module}.{name}",
                         "arch_kwargs": arch_kwargs(dims, residual),
                         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": dims == 2}
    configurations = {configuration: config}
    if dims == 3:
        configurations["3d_lowres"] = {"inherits_from": configuration, "data_identifier": "nnUNetPlans_3d_lowres",
                                       "spacing": [4.0, 2.0, 2.0], "next_stage": "3d_cascade_fullres"}
    return {"dataset_name": DATASET, "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": [2.0, 1.0, 1.0],
            "original_median_shape_after_transp": [10, 20, 24], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": list(transpose), "transpose_backward": [int(i) for i in np.argsort(transpose)],
            "configurations": configurations, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {
                "max": 60.0, "mean": 30.0, "median": 30.0, "min": 0.0, "percentile_00_5": 10.0,
                "percentile_99_5": 50.0, "std": 5.0}}}


def dataset_json(classes: int = 3) -> dict:
    labels = {"background": 0, **{f"label{i}": i for i in range(1, classes)}}
    return {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": 4, "file_ending": ".nii.gz"}


def network_config(arch: dict, in_channels: int = 1, classes: int = 3) -> NetworkConfig:
    """The autounet NetworkConfig of ``arch`` on nnU-Net's own axes (for building nnU-Net-named weights)."""
    residual = "n_blocks_per_stage" in arch
    return NetworkConfig(conv_dim=len(arch["kernel_sizes"][0]), in_channels=in_channels, num_classes=classes,
                         features_per_stage=arch["features_per_stage"], kernel_sizes=arch["kernel_sizes"],
                         strides=arch["strides"],
                         n_conv_per_stage=arch["n_blocks_per_stage" if residual else "n_conv_per_stage"],
                         n_conv_per_stage_decoder=list(reversed(arch["n_conv_per_stage_decoder"])),
                         architecture="residual_encoder" if residual else "plain")


def nnunet_named_state(config: NetworkConfig, seed: int = 0) -> dict:
    """Random weights of autounet's network for ``config`` under nnU-Net's names, with nnU-Net's alias copies
    (``all_modules`` and ``decoder.encoder``) as its real state dicts have them."""
    torch.manual_seed(seed)
    network = build_network(config)
    with torch.no_grad():  # non-trivial norm parameters, so a swapped weight and bias would show
        for module in network.modules():
            if isinstance(module, (torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    ours = network.state_dict()
    state = {theirs: ours[mine].clone() for theirs, mine in nnunet_parameter_names(config).items()}
    for name in list(state):
        parts = name.split(".")
        if parts[-2] in ("conv", "norm"):
            state[".".join(parts[:-2] + ["all_modules", "0" if parts[-2] == "conv" else "1", parts[-1]])] = state[name]
        if name.startswith("encoder."):
            state["decoder." + name] = state[name]
    return state


def dna_network(plans: dict, configuration: str, in_channels: int = 1, classes: int = 3, seed: int = 0):
    """nnU-Net's own network (dynamic_network_architectures) for a configuration, random weights, eval mode;
    None when the package is not installed."""
    import importlib

    try:  # an optional reference for tests only, never a dependency of autounet
        unet = importlib.import_module("dynamic_network_architectures.architectures.unet")
    except ImportError:
        return None
    arch = dict(plans["configurations"][configuration]["architecture"]["arch_kwargs"])
    dims = len(arch["kernel_sizes"][0])
    arch.update(conv_op=getattr(torch.nn, f"Conv{dims}d"), norm_op=getattr(torch.nn, f"InstanceNorm{dims}d"),
                nonlin=torch.nn.LeakyReLU, dropout_op=None)
    cls = unet.ResidualEncoderUNet if "n_blocks_per_stage" in arch else unet.PlainConvUNet
    torch.manual_seed(seed)
    network = cls(input_channels=in_channels, num_classes=classes, deep_supervision=True, **arch)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return network.eval()


def checkpoint(state: dict, trainer: str = "nnUNetTrainer", mirror_axes=(0, 1, 2)) -> dict:
    """A checkpoint dict as nnU-Net's trainer saves it, numpy scalars in its logs included."""
    return {"network_weights": state, "optimizer_state": {"state": {}, "param_groups": [{"lr": np.float64(0.01)}]},
            "grad_scaler_state": None,
            "logging": {"ema_fg_dice": [np.float64(0.5), np.float32(0.6)], "epoch_end_timestamps": [1.0]},
            "_best_ema": np.float64(0.6), "current_epoch": 1000,
            "init_args": {"configuration": "3d_fullres", "fold": 0, "device": torch.device("cpu")},
            "trainer_name": trainer, "inference_allowed_mirroring_axes": mirror_axes}


def write_nnunet_folder(base: Path, plans: dict, configuration: str, fold_states: dict, classes: int = 3,
                        trainer: str = "nnUNetTrainer", files=("checkpoint_final.pth",), mirror_axes=None) -> Path:
    """``base/<dataset>/<trainer>__nnUNetPlans__<configuration>/`` with plans.json, dataset.json and a
    checkpoint per fold (``fold_states``: fold label -> nnU-Net-named state dict)."""
    folder = base / DATASET / f"{trainer}__nnUNetPlans__{configuration}"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json(classes), indent=2))
    dims = 2 if configuration == "2d" else 3
    axes = tuple(range(dims)) if mirror_axes is None else mirror_axes
    for fold, state in fold_states.items():
        (folder / f"fold_{fold}").mkdir()
        for name in files:
            torch.save(checkpoint(state, trainer, axes), folder / f"fold_{fold}" / name)
    return folder
