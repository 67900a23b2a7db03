"""Plans made by autounet and by nnU-Net v2 for the same datasets at an 8 GB budget, side by side.

With ``--preset resenc-m|resenc-l|resenc-xl`` autounet plans with that preset at its memory target (11, 24, 40 GB)
and nnU-Net with ``nnUNetPlannerResEncM|L|XL`` (its nnUNetResEncUNet{M,L,XL}Plans.json); the table adds the
residual blocks per encoder stage.

Datasets: Hippocampus, ISBI 2012 EM, PH2 (../shared/data) and a synthetic anisotropic CT-like set
(../shared/bench/make_synthetic.py --kind ct). For each dataset both tools fingerprint and plan; the script prints
spacing, patch, batch, pooling (strides) and kernels per configuration, autounet's memory estimate for both plans
(nnU-Net's network rebuilt as an autounet NetworkConfig) and the batch that estimate would allow at 8 GB without
the 5 % dataset cap, plus the wall time of fingerprinting and planning.

Then two made-up fingerprints with large images (a liver-CT-like and a brain-MRI-like set), where memory rather
than image size limits the patch, planned from the fingerprint alone by both tools.

Usage: python bench/plans_vs_nnunet.py [--work DIR] [--ct-cases N] [--skip-real] [--skip-made-up]
                                      [--preset resenc-m|resenc-l|resenc-xl] [--gpu-memory GB]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (SHARED, SHARED_DATA, autounet_cmd, link_dataset, nnunet_bin, nnunet_env,  # noqa: E402
                          print_table, run_measured)
from autounet.network import NetworkConfig  # noqa: E402
from autounet.planning.fit import largest_fitting_batch  # noqa: E402
from autounet.planning.memory import estimate_training_memory_gb  # noqa: E402
from autounet.planning.presets import configuration_preset, preset  # noqa: E402

BUDGET_GB = 8
NNUNET_PLANNERS = {"default": ("ExperimentPlanner", "nnUNetPlans", 8),  # planner, plans file, its nominal GB
                   "resenc-m": ("nnUNetPlannerResEncM", "nnUNetResEncUNetMPlans", 8),
                   "resenc-l": ("nnUNetPlannerResEncL", "nnUNetResEncUNetLPlans", 24),
                   "resenc-xl": ("nnUNetPlannerResEncXL", "nnUNetResEncUNetXLPlans", 40)}
REAL = [(4, "Dataset004_Hippocampus"), (1, "Dataset001_ISBI2012EM"), (10, "Dataset010_PH2Dermoscopy")]
SYNTHETIC_CT = (951, "Dataset951_SynthCT")


def _axes(values) -> str:
    return "x".join(str(int(v)) for v in values)


def _spacing(values) -> str:
    return "x".join(f"{float(v):.3g}" for v in values)


def _strides(strides) -> str:
    return " ".join(_axes(s) for s in strides[1:])


def _kernels(kernels) -> str:
    distinct = []
    for k in kernels:
        text = _axes(k)
        if not distinct or distinct[-1][0] != text:
            distinct.append([text, 1])
        else:
            distinct[-1][1] += 1
    return " ".join(f"{t}*{n}" if n > 1 else t for t, n in distinct)


def _blocks(network: dict) -> str:
    """Encoder blocks (residual) or convolutions (plain) per stage, then the decoder's."""
    return (f"{','.join(str(n) for n in network['encoder'])} / "
            f"{','.join(str(n) for n in network['decoder'])}")


def memory_only_batch(network: NetworkConfig, patch: list[int], budget_gb: float = BUDGET_GB) -> int:
    """The batch autounet's memory model would allow at the budget without the 5 % dataset cap."""
    return largest_fitting_batch(lambda b: estimate_training_memory_gb(network, patch, b), budget_gb, 10**6)


def autounet_plans(dataset: str, root: Path, preset_name: str = "default",
                   budget_gb: float | None = None) -> tuple[dict, float]:
    budget_gb = budget_gb or preset(preset_name).memory_target_gb or BUDGET_GB
    measured = run_measured(autounet_cmd("plan", dataset, "--root", str(root), "--gpu-memory", str(budget_gb),
                                         "--workers", "2", "--preset", preset_name))
    if measured.returncode != 0:
        sys.exit(f"autounet plan failed:\n{measured.output}")
    plans = json.loads((root / "preprocessed" / Path(dataset).name / "plans.json").read_text())
    rows = {}
    for stored_name, c in plans["configurations"].items():
        if configuration_preset(stored_name) != preset(preset_name).name:
            continue  # another preset's plans, kept in plans.json
        name = stored_name.replace(f"_{preset(preset_name).name}", "")  # nnU-Net's name, as its planner's rows
        spacing = c["spacing"][1:] if c["is_2d"] else c["spacing"]
        rows[name] = dict(spacing=_spacing(spacing), patch=_axes(c["patch_size"]), batch=c["batch_size"],
                          stages=len(c["network"]["strides"]), strides=_strides(c["network"]["strides"]),
                          kernels=_kernels(c["network"]["kernel_sizes"]), memory=c["estimated_memory_gb"],
                          blocks=_blocks(dict(encoder=c["network"]["n_conv_per_stage"],
                                              decoder=c["network"]["n_conv_per_stage_decoder"])),
                          memory_batch=memory_only_batch(NetworkConfig(**c["network"]), c["patch_size"], budget_gb))
    return rows, measured.wall_s


def nnunet_network(arch: dict, dataset_json: dict) -> NetworkConfig:
    """autounet's NetworkConfig for the PlainConvUNet or ResidualEncoderUNet an nnU-Net plan describes (same
    blocks, same widths)."""
    conv_dim = 3 if arch["conv_op"].endswith("Conv3d") else 2
    labels = [v for k, v in dataset_json["labels"].items() if k != "ignore"]
    residual = "n_blocks_per_stage" in arch
    return NetworkConfig(conv_dim, len(dataset_json["channel_names"]), len(labels),
                         list(arch["features_per_stage"]), [list(k) for k in arch["kernel_sizes"]],
                         [list(s) for s in arch["strides"]],
                         list(arch["n_blocks_per_stage" if residual else "n_conv_per_stage"]),
                         list(arch["n_conv_per_stage_decoder"]),
                         architecture="residual_encoder" if residual else "plain")


def nnunet_plans(dataset_id: int, name: str, base: Path, fingerprint: bool = True,
                 preset_name: str = "default", budget_gb: float = BUDGET_GB) -> tuple[dict, float]:
    """nnU-Net's plans by the planner matching ``preset_name``; ``budget_gb`` is the budget for the
    "batch by memory alone" column (autounet's, so the two rows compare)."""
    env = nnunet_env(base)
    total = 0.0
    planner, plans_name, _ = NNUNET_PLANNERS[preset_name]
    commands = [[nnunet_bin("nnUNetv2_plan_experiment"), "-d", str(dataset_id), "-pl", planner]]
    if fingerprint:
        commands.insert(0, [nnunet_bin("nnUNetv2_extract_fingerprint"), "-d", str(dataset_id), "-np", "2"])
    for cmd in commands:
        measured = run_measured(cmd, env=env)
        if measured.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{measured.output}")
        total += measured.wall_s
    plans = json.loads((base / "preprocessed" / name / f"{plans_name}.json").read_text())
    dataset_json = json.loads((base / "raw" / name / "dataset.json").read_text())
    rows = {}
    for config, c in plans["configurations"].items():
        if "inherits_from" in c:  # e.g. 3d_cascade_fullres: 3d_fullres with a previous stage
            c = {**plans["configurations"][c["inherits_from"]], **c}
        arch = c["architecture"]["arch_kwargs"]
        network = nnunet_network(arch, dataset_json)
        rows[config] = dict(spacing=_spacing(c["spacing"]), patch=_axes(c["patch_size"]), batch=c["batch_size"],
                            stages=arch["n_stages"], strides=_strides(arch["strides"]),
                            kernels=_kernels(arch["kernel_sizes"]),
                            blocks=_blocks(dict(encoder=network.n_conv_per_stage,
                                                decoder=network.n_conv_per_stage_decoder)),
                            memory=round(estimate_training_memory_gb(network, c["patch_size"], c["batch_size"]), 3),
                            memory_batch=memory_only_batch(network, list(c["patch_size"]), budget_gb))
    return rows, total


MEMORY_BOUND = [  # (id, name, median shape (z, y, x), spacing, cases, channel): large images, patch set by memory
    (952, "Dataset952_FingerprintLiverCT", (120, 512, 512), (2.5, 0.78, 0.78), 100, "CT"),
    (953, "Dataset953_FingerprintBrainMRI", (160, 192, 160), (1.0, 1.0, 1.0), 400, "T1"),
]


def write_fingerprint_only_dataset(dataset_id: int, name: str, shape, spacing, cases: int, channel: str,
                                   ours: Path, theirs: Path) -> None:
    """The same made-up fingerprint for both tools (no images: planning needs only the fingerprint).

    nnU-Net's planner opens one image to pick its reader, so a tiny one is written for it.
    """
    import numpy as np
    import SimpleITK as sitk

    from autounet.fingerprint import CaseFingerprint, ChannelStats, Fingerprint, save_fingerprint

    rng = np.random.default_rng(dataset_id)
    shapes = [[int(round(s * f)) for s, f in zip(shape, rng.uniform(0.85, 1.15, 3))] for _ in range(cases)]
    labels = {"background": 0, "organ": 1, "lesion": 2}
    stats = dict(max=1500.0, mean=80.0, median=85.0, min=-1000.0, percentile_00_5=-200.0, percentile_99_5=300.0,
                 std=60.0)
    fingerprint = Fingerprint(
        dataset_name=name, is_2d=False, channel_names={0: channel}, label_values=[0, 1, 2],
        cases=[CaseFingerprint(f"case_{i:03d}", tuple(sh), tuple(spacing), [[0, x] for x in sh], tuple(sh))
               for i, sh in enumerate(shapes)],
        channels=[ChannelStats(stats["mean"], stats["std"], stats["median"], stats["min"], stats["max"],
                               stats["percentile_00_5"], stats["percentile_99_5"])])
    save_fingerprint(fingerprint, ours / "preprocessed" / name)
    raw = theirs / "raw" / name
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32))
    image.SetSpacing(tuple(float(v) for v in spacing[::-1]))
    sitk.WriteImage(image, str(raw / "imagesTr" / "case_000_0000.nii.gz"))
    sitk.WriteImage(sitk.Cast(image, sitk.sitkUInt8), str(raw / "labelsTr" / "case_000.nii.gz"))
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": channel}, "labels": labels,
                                                  "numTraining": cases, "file_ending": ".nii.gz"}))
    nnunet_fingerprint = {"foreground_intensity_properties_per_channel": {"0": stats},
                          "median_relative_size_after_cropping": 1.0, "shapes_after_crop": shapes,
                          "spacings": [list(spacing)] * cases}
    (theirs / "preprocessed" / name).mkdir(parents=True, exist_ok=True)
    (theirs / "preprocessed" / name / "dataset_fingerprint.json").write_text(json.dumps(nnunet_fingerprint))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="working folder [default: a temporary one]")
    parser.add_argument("--ct-cases", type=int, default=20)
    parser.add_argument("--skip-real", action="store_true", help="only the made-up memory-bound fingerprints")
    parser.add_argument("--skip-made-up", action="store_true", help="only the real and synthetic datasets")
    parser.add_argument("--preset", default="default", choices=sorted(NNUNET_PLANNERS),
                        help="autounet preset, compared with the matching nnU-Net planner")
    parser.add_argument("--gpu-memory", type=float, default=None,
                        help="autounet's budget in GB [default: the preset's target, 8 GB for default]; nnU-Net's "
                             "planner keeps its own target")
    args = parser.parse_args()
    budget_gb = args.gpu_memory or preset(args.preset).memory_target_gb or BUDGET_GB
    nnunet_gb = NNUNET_PLANNERS[args.preset][2]
    against = (f"{args.preset} at {budget_gb:g} GB vs nnU-Net v2 {NNUNET_PLANNERS[args.preset][0]} "
               f"(for {nnunet_gb:g} GB)")
    work = args.work or Path(tempfile.mkdtemp(prefix="plans_vs_nnunet_"))
    ours, theirs = work / "autounet", work / "nnunet"
    sources = [(i, n, SHARED_DATA / n) for i, n in REAL if (SHARED_DATA / n / "dataset.json").is_file()]
    ct_folder = work / "synthetic" / SYNTHETIC_CT[1]
    if not (ct_folder / "dataset.json").is_file():
        subprocess.run([sys.executable, str(SHARED / "bench" / "make_synthetic.py"), "--out", str(ct_folder),
                        "--kind", "ct", "--n", str(args.ct_cases), "--seed", "0"], check=True)
    sources.append((*SYNTHETIC_CT, ct_folder))
    header = ["dataset", "config", "tool", "spacing", "patch", "batch", "stages", "strides (after stage 0)",
              "kernels", "blocks (encoder / decoder)", "est. GB", "batch by memory alone"]
    rows, timing = [], []
    for dataset_id, name, source in [] if args.skip_real else sources:
        linked = link_dataset(source, ours / "raw", name)
        link_dataset(source, theirs / "raw", name)
        our_rows, our_s = autounet_plans(str(linked), ours, args.preset, budget_gb)
        their_rows, their_s = nnunet_plans(dataset_id, name, theirs, preset_name=args.preset, budget_gb=budget_gb)
        timing.append([name, f"{our_s:.1f}", f"{their_s:.1f}", f"{our_s / their_s:.2f}"])
        rows.extend(side_by_side(name, our_rows, their_rows))
    if rows:
        print_table(f"Plans: autounet {against}", header, rows)
        print_table("Verify + fingerprint + plan wall time (s), one run",
                    ["dataset", "autounet", "nnU-Net", "ratio"], timing)
    rows, timing = [], []
    for dataset_id, name, shape, spacing, cases, channel in [] if args.skip_made_up else MEMORY_BOUND:
        write_fingerprint_only_dataset(dataset_id, name, shape, spacing, cases, channel, ours, theirs)
        our_rows, our_s = autounet_plans(name, ours, args.preset, budget_gb)
        their_rows, their_s = nnunet_plans(dataset_id, name, theirs, fingerprint=False, preset_name=args.preset,
                                           budget_gb=budget_gb)
        timing.append([name, f"{our_s:.1f}", f"{their_s:.1f}", f"{our_s / their_s:.2f}"])
        rows.extend(side_by_side(name, our_rows, their_rows))
    if rows:
        print_table(f"Memory-bound made-up fingerprints: autounet {against}", header, rows)
        print_table("Plan wall time from a fingerprint (s), one run", ["dataset", "autounet", "nnU-Net", "ratio"],
                    timing)


def side_by_side(name: str, our_rows: dict, their_rows: dict) -> list[list]:
    rows = []
    for config in sorted(set(our_rows) | set(their_rows)):
        for tool, table in (("autounet", our_rows), ("nnU-Net", their_rows)):
            if config in table:
                r = table[config]
                rows.append([name.split("_", 1)[1], config, tool, r["spacing"], r["patch"], r["batch"],
                             r["stages"], r["strides"], r["kernels"], r["blocks"], r["memory"], r["memory_batch"]])
            else:
                rows.append([name.split("_", 1)[1], config, tool, "(not planned)", "", "", "", "", "", "", "", ""])
    return rows


if __name__ == "__main__":
    main()
