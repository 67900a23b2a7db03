"""Benchmark: predicting 10 Hippocampus cases on the CPU, autounet beside nnU-Net v2, in one run.

Both tools get the same network shape and patch: nnU-Net plans and preprocesses a 40-case subset of the real
Hippocampus data and trains fold 0 for a few iterations (nnUNetTrainer_CPUBench); autounet installs that fold
with the code of ``autounet install-model --from-nnunet`` (plan translated, weights renamed), so both predict
with the same model and their Dice can be compared (it is poor: the weights have seen only BENCH_TRAIN_ITERS
training iterations). The agreement of the two tools' label maps (Dice per case) is printed at the end.

nnU-Net also runs with OMP_WAIT_POLICY=PASSIVE, which autounet predict sets for itself (OpenMP threads
sleep instead of spinning while they wait, which matters on a shared, loaded machine), to show how much of the
difference that alone makes. autounet runs twice: with its default precision (bfloat16 autocast on CPUs with
native bfloat16, as here) and with ``--precision float32`` (nnU-Net computes in float32 on the CPU).

Per tool: start-up (one case minus the per-case time), seconds per case without and with mirroring TTA (from
10-case calls, start-up subtracted), peak memory of the process tree, achieved GFLOP/s of the forward passes
(floating-point work of the tiles' forward passes per case divided by the time per case) and mean foreground
Dice against the reference labels.

Usage: python bench/predict.py [--work /tmp/autounet_bench_predict] [--cases 10] [--train-cases 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (SHARED_DATA, Measured, autounet_cmd, nnunet_bin, nnunet_env,  # noqa: E402
                          print_table, run_measured)

DATASET = "Dataset004_Hippocampus"
TRAINER = "nnUNetTrainer_CPUBench"


def make_subset(work: Path, train_cases: int, test_cases: int) -> tuple[Path, Path, Path]:
    """A raw dataset of ``train_cases`` labelled cases, and a folder of ``test_cases`` other cases with labels."""
    source = SHARED_DATA / DATASET
    if not (source / "dataset.json").is_file():
        sys.exit(f"{source} is missing; this benchmark needs the real Hippocampus data.")
    ids = sorted(p.name[: -len(".nii.gz")] for p in (source / "labelsTr").glob("*.nii.gz"))
    raw = work / "nnunet" / "raw" / DATASET
    test, reference = work / "test_images", work / "test_labels"
    for folder in (raw / "imagesTr", raw / "labelsTr", test, reference):
        folder.mkdir(parents=True, exist_ok=True)

    def link(src: Path, dst: Path) -> None:
        if not dst.exists():
            dst.symlink_to(src)

    for case in ids[:train_cases]:
        link(source / "imagesTr" / f"{case}_0000.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz")
        link(source / "labelsTr" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")
    for case in ids[train_cases:train_cases + test_cases]:
        link(source / "imagesTr" / f"{case}_0000.nii.gz", test / f"{case}_0000.nii.gz")
        link(source / "labelsTr" / f"{case}.nii.gz", reference / f"{case}.nii.gz")
    spec = json.loads((source / "dataset.json").read_text())
    spec["numTraining"] = train_cases
    (raw / "dataset.json").write_text(json.dumps(spec, indent=2))
    return raw, test, reference


def train_nnunet(env: dict, iterations: int) -> tuple[Path, float]:
    """Plan, preprocess and train fold 0 briefly (skipped when already done); the fold folder and seconds spent."""
    results = Path(env["nnUNet_results"]) / DATASET / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
    start = time.perf_counter()
    plans = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans.json"
    if not plans.is_file():
        _check(run_measured([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", "4", "-c", "3d_fullres",
                             "-np", "2"], env=env), "nnU-Net plan_and_preprocess")
    if not (results / "checkpoint_final.pth").is_file():
        train_env = {**env, "BENCH_TRAIN_ITERS": str(iterations), "BENCH_VAL_ITERS": "1",
                     "BENCH_SKIP_FINAL_VAL": "1"}
        _check(run_measured([nnunet_bin("nnUNetv2_train"), "4", "3d_fullres", "0", "-tr", TRAINER,
                             "-device", "cpu"], env=train_env), "nnU-Net train")
    return results, time.perf_counter() - start


def _check(measured: Measured, what: str) -> Measured:
    if measured.returncode != 0:
        print(measured.output[-4000:], file=sys.stderr)
        sys.exit(f"{what} failed (exit {measured.returncode})")
    return measured


def make_autounet_model(work: Path, nnunet_fold: Path) -> tuple[Path, object]:
    """nnU-Net's trained fold installed as an autounet model (``autounet install-model --from-nnunet``'s code)."""
    from autounet.inference.model_folder import load_trained_configuration
    from autounet.inference.nnunet_import import import_nnunet_model

    installed = import_nnunet_model([nnunet_fold.parent], work / "autounet" / "results", folds=["0"], overwrite=True)
    fold = installed[0].folder / "fold_0"
    return fold, load_trained_configuration(fold).plan


def forward_gflop_per_case(plan, test: Path) -> tuple[float, float]:
    """Floating-point work (GFLOP) of one forward pass of a patch, and of all passes per case without TTA
    (tiles counted on the preprocessed shapes with autounet's tiling)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from autounet.inference.sliding_window import WindowSettings, tile_boxes, tile_shape
    from autounet.io import read_image
    from autounet.network import build_network

    network = build_network(plan.network).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 1, *plan.patch_size))
    per_patch = counter.get_total_flops() / 1e9
    settings = WindowSettings(tuple(plan.patch_size), tuple(plan.network.total_downsampling()))
    total = 0.0
    files = sorted(test.glob("*.nii.gz"))
    for path in files:
        image, geometry = read_image([path])
        shape = [round(s * g / t) for s, g, t in zip(image.shape[1:], geometry.spacing, plan.spacing)]
        tile = tile_shape(shape, settings)
        padded = [max(s, t) for s, t in zip(shape, tile)]
        voxel_ratio = float(np.prod(tile) / np.prod(plan.patch_size))
        total += len(tile_boxes(padded, tile, 0.5)) * per_patch * voxel_ratio
    return per_patch, total / len(files)


def pure_forward_gflops(plan, per_patch: float, repeats: int = 4) -> float:
    """GFLOP/s of autounet's network alone on a patch (this machine's arithmetic ceiling for these passes)."""
    import torch

    from autounet.network import build_network

    network = build_network(plan.network).eval()
    x = torch.randn(1, 1, *plan.patch_size)
    with torch.inference_mode():
        network(x)
        start = time.perf_counter()
        for _ in range(repeats):
            network(x)
    return per_patch * repeats / (time.perf_counter() - start)


def forward_ceiling_in_child(fold: Path, per_patch: float) -> float:
    """:func:`pure_forward_gflops` in a fresh process with the OpenMP wait policy autounet predict uses."""
    import subprocess

    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "from bench.predict import pure_forward_gflops; from autounet.planning.plans import load_plans; "
            "plan = load_plans(Path(sys.argv[2]) / 'plans.json').configuration('3d_fullres'); "
            "print(pure_forward_gflops(plan, float(sys.argv[3])))")
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(repo), str(fold), str(per_patch)], capture_output=True,
                          text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def mean_foreground_dice(prediction: Path, reference: Path) -> float:
    """Mean over cases and labels 1, 2 of Dice (a label absent from both counts as 1)."""
    import SimpleITK as sitk

    scores = []
    for ref_file in sorted(reference.glob("*.nii.gz")):
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_file)))
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(prediction / ref_file.name)))
        for label in (1, 2):
            a, b = ref == label, pred == label
            denominator = a.sum() + b.sum()
            scores.append(1.0 if denominator == 0 else 2.0 * np.logical_and(a, b).sum() / denominator)
    return float(np.mean(scores))


def tool_agreement(first: Path, second: Path, cases: list[str]) -> tuple[float, float]:
    """Mean and lowest per-case Dice between two tools' label maps (labels 1 and 2 pooled per case by mean)."""
    import SimpleITK as sitk

    per_case = []
    for name in cases:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(first / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(second / name)))
        scores = []
        for label in (1, 2):
            x, y = a == label, b == label
            denominator = x.sum() + y.sum()
            scores.append(1.0 if denominator == 0 else 2.0 * np.logical_and(x, y).sum() / denominator)
        per_case.append(float(np.mean(scores)))
    return float(np.mean(per_case)), float(np.min(per_case))


def one_case_folder(test: Path, work: Path) -> Path:
    folder = work / "one_case"
    folder.mkdir(exist_ok=True)
    first = sorted(test.glob("*.nii.gz"))[0]
    if not (folder / first.name).exists():
        (folder / first.name).symlink_to(first.resolve())
    return folder


def run_tool(tool: str, inputs: Path, output: Path, tta: bool, env: dict, autounet_fold: Path) -> Measured:
    if output.exists():
        shutil.rmtree(output)
    if tool.startswith("nnU-Net"):
        if tool.endswith("PASSIVE"):
            env = {**env, "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = [nnunet_bin("nnUNetv2_predict"), "-i", str(inputs), "-o", str(output), "-d", "4", "-c",
               "3d_fullres", "-f", "0", "-tr", TRAINER, "-device", "cpu", "--disable_progress_bar"]
        if not tta:
            cmd.append("--disable_tta")
        return _check(run_measured(cmd, env=env), f"nnU-Net predict ({inputs.name})")
    precision = "float32" if tool.endswith("float32") else "auto"
    cmd = autounet_cmd("predict", "-i", str(inputs), "-o", str(output), "-m", str(autounet_fold),
                       "--device", "cpu", "--precision", precision)
    if not tta:
        cmd.append("--no-tta")
    return _check(run_measured(cmd, cwd=Path(__file__).resolve().parents[1]), f"autounet predict ({inputs.name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_predict"))
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--train-cases", type=int, default=40)
    parser.add_argument("--train-iters", type=int, default=2)
    args = parser.parse_args()
    work = args.work.resolve()
    load_start = os.getloadavg()[0]
    raw, test, reference = make_subset(work, args.train_cases, args.cases)
    env = nnunet_env(work / "nnunet")
    nnunet_fold, train_seconds = train_nnunet(env, args.train_iters)
    autounet_fold, plan = make_autounet_model(work, nnunet_fold)
    print(f"models ready in {train_seconds:.0f} s; patch {plan.patch_size}, features "
          f"{plan.network.features_per_stage}, {args.cases} test cases", flush=True)
    single = one_case_folder(test, work)
    rows, measured = [], {}
    tools = ("nnU-Net", "nnU-Net PASSIVE", "autounet", "autounet float32")
    for tool in tools:
        one = run_tool(tool, single, work / f"out_{tool}_one", False, env, autounet_fold)
        plain = run_tool(tool, test, work / f"out_{tool}_plain", False, env, autounet_fold)
        mirrored = run_tool(tool, test, work / f"out_{tool}_tta", True, env, autounet_fold)
        per_case = max((plain.wall_s - one.wall_s) / (args.cases - 1), 1e-6)
        startup = max(one.wall_s - per_case, 0.0)
        per_case_tta = max((mirrored.wall_s - startup) / args.cases, 1e-6)
        measured[tool] = dict(startup=startup, per_case=per_case, per_case_tta=per_case_tta,
                              peak=max(plain.peak_gb, mirrored.peak_gb), peak_tta=mirrored.peak_gb,
                              dice=mean_foreground_dice(work / f"out_{tool}_tta", reference),
                              dice_plain=mean_foreground_dice(work / f"out_{tool}_plain", reference))
        print(f"{tool}: {measured[tool]}", flush=True)
    per_patch, per_case_gflop = forward_gflop_per_case(plan, test)
    ceiling = forward_ceiling_in_child(autounet_fold, per_patch)
    for tool, m in measured.items():
        rows.append([tool, m["startup"], m["per_case"], m["per_case_tta"], m["peak_tta"],
                     per_case_gflop / m["per_case"], 8 * per_case_gflop / m["per_case_tta"], m["dice_plain"],
                     m["dice"]])
    for base in tools[:2]:
        theirs = measured[base]
        for tool in tools[2:]:
            ours = measured[tool]
            rows.append([f"ratio {tool} / {base}", ours["startup"] / theirs["startup"],
                         ours["per_case"] / theirs["per_case"], ours["per_case_tta"] / theirs["per_case_tta"],
                         ours["peak_tta"] / theirs["peak_tta"], "", "", "", ""])
    print_table(f"predict {args.cases} Hippocampus cases on CPU ({os.cpu_count()} cores), patch "
                f"{'x'.join(map(str, plan.patch_size))}, {per_patch:.1f} GFLOP per patch forward, "
                f"network alone {ceiling:.0f} GFLOP/s",
                ["tool", "start-up s", "s/case no TTA", "s/case TTA", "peak GB (TTA run)",
                 "GFLOP/s no TTA", "GFLOP/s TTA", "Dice no TTA", "Dice TTA"], rows)
    cases = sorted(p.name for p in reference.glob("*.nii.gz"))
    for ours in tools[2:]:
        for mode in ("plain", "tta"):
            mean, lowest = tool_agreement(work / f"out_nnU-Net_{mode}", work / f"out_{ours}_{mode}", cases)
            print(f"agreement nnU-Net vs {ours} ({'TTA' if mode == 'tta' else 'no TTA'}): Dice mean {mean:.4f}, "
                  f"lowest case {lowest:.4f}")
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (start: {load_start:.1f}); "
          "every time above includes waiting for the CPU behind other jobs.")
    print("\nGoals: s/case with TTA <= 0.8x nnU-Net, peak memory <= 0.5x, start-up < 3 s. Dice is of weights "
          f"trained {args.train_iters} iterations (both tools use the same weights), so it is poor by design.")


if __name__ == "__main__":
    main()
