"""Benchmark: the same trained network predicted by nnU-Net v2 and by autounet, label maps compared per case.

The model is an autounet configuration folder (any trained one). It is written out as an nnU-Net v2 results
folder (plans.json in nnU-Net's format, fold_K/checkpoint_final.pth with nnU-Net's parameter names), installed
back with ``autounet install-model --from-nnunet``'s code (the weights must come back unchanged: checked), and
then ``nnUNetv2_predict`` and ``autounet predict --precision float32`` segment the same images with it, with and
without mirroring TTA. Printed: Dice per case between the two tools' label maps (mean over the foreground labels),
and each tool's wall time and peak memory per call.

nnU-Net v2 comes from ../shared/bench/install_nnunet.sh (see bench/common.py).

Usage: python bench/nnunet_equivalence.py --model RESULTS/DatasetXXX/CONFIG [--images FOLDER] [--cases 5]
                                          [--folds 0] [--work /tmp/autounet_bench_equivalence]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (SHARED_DATA, autounet_cmd, nnunet_bin, nnunet_env, print_table,  # noqa: E402
                          run_measured)

TRAINER, PLANS = "nnUNetTrainer", "nnUNetPlans"
SCHEMES = {"zscore": "ZScoreNormalization", "ct": "CTNormalization", "none": "NoNormalization",
           "rescale_to_0_1": "RescaleTo01Normalization", "rgb_to_0_1": "RGBTo0_1Normalization"}


def nnunet_plans(trained) -> dict:
    """autounet's plan of ``trained`` written as nnU-Net v2 plans (plain U-Net, images' own axis order)."""
    plan, plans = trained.plan, trained.plans
    net = plan.network
    if net.architecture != "plain":
        sys.exit("this benchmark writes PlainConvUNet plans; the model has a residual encoder")
    dims = net.conv_dim
    resampling = plan.resampling
    axes = slice(1, None) if plan.is_2d else slice(None)

    def kwargs(order: int, order_z: int, is_seg: bool) -> dict:
        return {"is_seg": is_seg, "order": order, "order_z": order_z, "force_separate_z": None}

    config = {
        "data_identifier": f"{PLANS}_{plan.name}", "preprocessor_name": "DefaultPreprocessor",
        "batch_size": plan.batch_size, "patch_size": plan.patch_size,
        "median_image_size_in_voxels": plan.median_shape[axes], "spacing": plan.spacing[axes],
        "normalization_schemes": [SCHEMES[s] for s in plan.normalization], "use_mask_for_norm": plan.use_mask_for_norm,
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": kwargs(resampling.order_data, resampling.order_data_z, False),
        "resampling_fn_seg_kwargs": kwargs(resampling.order_seg, resampling.order_seg_z, True),
        "resampling_fn_probabilities_kwargs": kwargs(resampling.order_seg, resampling.order_seg_z, False),
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": net.num_stages, "features_per_stage": net.features_per_stage,
                "conv_op": f"torch.nn.modules.conv.Conv{dims}d", "kernel_sizes": net.kernel_sizes,
                "strides": net.strides, "n_conv_per_stage": net.n_conv_per_stage,
                "n_conv_per_stage_decoder": list(reversed(net.n_conv_per_stage_decoder)), "conv_bias": True,
                "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True, "negative_slope": net.negative_slope}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": False}
    stats = {str(c): {k: getattr(s, k) for k in ("max", "mean", "median", "min", "percentile_00_5",
                                                 "percentile_99_5", "std")}
             for c, s in enumerate(plans.intensity_stats)}
    return {"dataset_name": plans.dataset_name, "plans_name": PLANS,
            "original_median_spacing_after_transp": plan.spacing,
            "original_median_shape_after_transp": plan.median_shape,
            "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {plan.name: config}, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": stats}


def nnunet_state(state: dict, network) -> dict:
    """autounet weights under nnU-Net's names, with the alias copies nnU-Net's state dicts also hold."""
    from autounet.inference.nnunet_names import nnunet_parameter_names

    named = {theirs: state[ours] for theirs, ours in nnunet_parameter_names(network).items()}
    for name in list(named):
        parts = name.split(".")
        if parts[-2] in ("conv", "norm"):
            alias = parts[:-2] + ["all_modules", "0" if parts[-2] == "conv" else "1", parts[-1]]
            named[".".join(alias)] = named[name]
    for name in [n for n in named if n.startswith("encoder.")]:
        named["decoder." + name] = named[name]
    return named


def write_nnunet_model(model: Path, folds: list[str], results: Path, patch: list[int] | None = None,
                       extra_folds: int = 0) -> Path:
    """The autounet configuration folder ``model`` as an nnU-Net v2 results folder under ``results``.

    ``patch`` replaces the plan's patch (for both tools: smaller patches make images span several tiles).
    ``extra_folds`` adds stand-in folds K+1, ... made from the last fold's weights with 5 % Gaussian noise added
    (seeded), so an ensemble of distinct networks can be compared where only one fold was trained.
    """
    import torch
    from safetensors.torch import load_file

    from autounet.inference.model_folder import load_trained_configuration

    trained = load_trained_configuration(model, folds)
    folder = results / trained.plans.dataset_name / f"{TRAINER}__{PLANS}__{trained.name}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    plans = nnunet_plans(trained)
    if patch:
        plans["configurations"][trained.name]["patch_size"] = list(patch)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    shutil.copy(trained.folds[0].folder / "dataset.json", folder / "dataset.json")
    dims = trained.plan.network.conv_dim
    weights = [(fold.fold, load_file(str(fold.weights))) for fold in trained.folds]
    generator = torch.Generator().manual_seed(0)
    last = int(weights[-1][0])
    for k in range(extra_folds):
        weights.append((str(last + 1 + k), {name: value + 0.05 * value.std().nan_to_num() *
                                            torch.randn(value.shape, generator=generator)
                                            for name, value in weights[-1][1].items()}))
    for label, state in weights:
        (folder / f"fold_{label}").mkdir()
        torch.save({"network_weights": nnunet_state(state, trained.plan.network), "trainer_name": TRAINER,
                    "current_epoch": 1,
                    "init_args": {"plans": plans, "configuration": trained.name, "fold": label,
                                  "dataset_json": json.loads((folder / "dataset.json").read_text())},
                    "inference_allowed_mirroring_axes": tuple(range(dims))},
                   folder / f"fold_{label}" / "checkpoint_final.pth")
    return folder


def round_trip(folder: Path, model: Path, folds: list[str], work: Path) -> Path:
    """Install the written nnU-Net folder back; the weights of ``folds`` must equal the model's. The installed
    configuration folder (all folds of ``folder``)."""
    from safetensors.torch import load_file

    from autounet.inference.nnunet_import import import_nnunet_model

    target = work / "autounet" / "results"
    if target.exists():
        shutil.rmtree(target)
    installed = import_nnunet_model([folder], target)[0]
    for fold in folds:
        ours = load_file(str(model / f"fold_{fold}" / "model_final.safetensors"))
        back = load_file(str(installed.folder / f"fold_{fold}" / "model_final.safetensors"))
        if ours.keys() != back.keys() or any(not (ours[k] == back[k]).all() for k in ours):
            sys.exit(f"fold {fold}: the weights did not survive the round trip through nnU-Net's format")
    return installed.folder


def case_agreement(first: Path, second: Path, case: str, ending: str, labels: list[int]) -> tuple[float, int]:
    """The Dice between two label maps of ``case`` (mean over ``labels``; 1.0 for a label neither holds) and the
    number of voxels whose label differs."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(first / f"{case}{ending}")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(second / f"{case}{ending}")))
    per_label = []
    for label in labels:
        x, y = a == label, b == label
        total = x.sum() + y.sum()
        per_label.append(1.0 if total == 0 else 2.0 * float((x & y).sum()) / float(total))
    return float(np.mean(per_label)), int((a != b).sum())


def dice_per_case(first: Path, second: Path, cases: list[str], ending: str, labels: list[int]) -> list[float]:
    return [case_agreement(first, second, case, ending, labels)[0] for case in cases]


def agreement_cells(first: Path, second: Path, cases: list[str], ending: str, labels: list[int]) -> list[str]:
    """Two table cells for the maps of two tools: "Dice mean / lowest case" to 5 digits (3 would round every
    near-identical run to 1.000) and "voxels that differ, fewest-most per case / all cases"."""
    scores, differing = zip(*(case_agreement(first, second, case, ending, labels) for case in cases))
    return [f"{np.mean(scores):.5f} / {min(scores):.5f}", f"{min(differing)}-{max(differing)} / {sum(differing)}"]


def link_or_rescale(source: Path, target: Path, spacing_scale: float | None) -> None:
    """``target`` as a link to ``source``, or with ``spacing_scale`` a copy whose voxel spacing is scaled by it (the
    same voxels, so both tools resample the image to their plan's spacing and their outputs back)."""
    if spacing_scale is None:
        target.symlink_to(source)
        return
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    image.SetSpacing([s * spacing_scale for s in image.GetSpacing()])
    sitk.WriteImage(image, str(target))


def compare(folder: Path, installed: Path, env: dict, images: Path, cases_wanted: int | list[str], tta_runs: str,
            work: Path, what: str, labels_folder: Path | None = None, folds: list[str] | None = None,
            spacing_scale: float | None = None) -> None:
    """``nnUNetv2_predict`` with the nnU-Net results ``folder`` against ``autounet predict`` with its installed
    copy ``installed`` on the same images; Dice per case between the two (and against ``labels_folder``'s
    reference labels when given), wall time and peak memory per call. ``folds``: all of the folder's by default.
    ``spacing_scale``: the images' spacing scaled by it (see :func:`link_or_rescale`)."""
    folds = folds or sorted(p.name[len("fold_"):] for p in folder.glob("fold_*"))
    trainer, plans_name, configuration = folder.name.split("__")
    spec = json.loads((folder / "dataset.json").read_text())
    ending = spec["file_ending"]
    channels = len(spec["channel_names"])
    available = sorted({p.name[: -len(f"_0000{ending}")] for p in images.glob(f"*_0000{ending}")})
    cases = available[:cases_wanted] if isinstance(cases_wanted, int) else list(cases_wanted)
    inputs = work / "inputs"
    if inputs.exists():
        shutil.rmtree(inputs)
    inputs.mkdir(parents=True)
    for case in cases:
        for c in range(channels):
            name = f"{case}_{c:04d}{ending}"
            link_or_rescale(images / name, inputs / name, spacing_scale)
    dataset_id = folder.parent.name
    labels = [v for v in spec["labels"].values() if isinstance(v, int) and v != 0]
    rows = []
    for tta in {"both": (False, True), "off": (False,), "on": (True,)}[tta_runs]:
        outputs = {}
        for tool in ("nnU-Net", "autounet"):
            out = work / f"out_{tool}_{'tta' if tta else 'plain'}"
            if out.exists():
                shutil.rmtree(out)
            if tool == "nnU-Net":
                cmd = [nnunet_bin("nnUNetv2_predict"), "-i", str(inputs), "-o", str(out), "-d", dataset_id, "-c",
                       configuration, "-f", *folds, "-tr", trainer, "-p", plans_name, "-device", "cpu",
                       "--disable_progress_bar", "-npp", "1", "-nps", "1"]
                if not tta:
                    cmd.append("--disable_tta")
                done = run_measured(cmd, env=env)
            else:
                cmd = autounet_cmd("predict", "-i", str(inputs), "-o", str(out), "-m", str(installed), "-f",
                                   *folds, "--precision", "float32", "--device", "cpu")
                if not tta:
                    cmd.append("--no-tta")
                done = run_measured(cmd, cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                sys.exit(f"{tool} predict failed:\n{done.output[-4000:]}")
            outputs[tool] = (out, done)
        row = ["TTA" if tta else "no TTA",
               *agreement_cells(outputs["nnU-Net"][0], outputs["autounet"][0], cases, ending, labels)]
        if labels_folder is not None:
            row += [float(np.mean(dice_per_case(labels_folder, outputs[tool][0], cases, ending, labels)))
                    for tool in ("nnU-Net", "autounet")]
        rows.append(row + [outputs["nnU-Net"][1].wall_s, outputs["autounet"][1].wall_s,
                           outputs["nnU-Net"][1].peak_gb, outputs["autounet"][1].peak_gb])
    reference = ["Dice vs reference nnU-Net", "Dice vs reference autounet"] if labels_folder is not None else []
    rescaled = f", spacing scaled by {spacing_scale}" if spacing_scale is not None else ""
    print_table(f"nnUNetv2_predict vs autounet predict (float32) on {len(cases)} cases of {images}{rescaled}, the "
                f"same networks ({what}, folds {' '.join(folds)})",
                ["mirroring", "Dice between the tools, mean / lowest case", "voxels that differ, per case / all",
                 *reference, "nnU-Net s (call)",
                 "autounet s (call)", "nnU-Net peak GB", "autounet peak GB"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained autounet configuration folder")
    parser.add_argument("--images", type=Path, default=SHARED_DATA / "Dataset004_Hippocampus" / "imagesTr")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--folds", nargs="+", default=["0"])
    parser.add_argument("--patch", type=int, nargs="+", help="replace the plan's patch (both tools)")
    parser.add_argument("--extra-folds", type=int, default=0, help="stand-in folds from noisy copies of the last")
    parser.add_argument("--tta", choices=("both", "off", "on"), default="both", help="mirroring runs to compare")
    parser.add_argument("--spacing-scale", type=float, default=None,
                        help="scale the images' spacing by this, so that both tools resample (e.g. 0.75)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_equivalence"))
    args = parser.parse_args()
    work = args.work.resolve()
    env = nnunet_env(work / "nnunet")
    folder = write_nnunet_model(args.model.resolve(), args.folds, Path(env["nnUNet_results"]), args.patch,
                                args.extra_folds)
    installed = round_trip(folder, args.model.resolve(), args.folds, work)
    stand_ins = f", {args.extra_folds} of them stand-ins" if args.extra_folds else ""
    patch = f", patch {'x'.join(map(str, args.patch))}" if args.patch else ""
    compare(folder, installed, env, args.images, args.cases, args.tta, work, f"{args.model}{stand_ins}{patch}",
            spacing_scale=args.spacing_scale)


if __name__ == "__main__":
    main()
