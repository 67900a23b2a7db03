"""Benchmark: one whole-body-CT-sized volume predicted with mirroring TTA, autounet beside nnU-Net v2, on the CPU.

    python bench/big_volume.py                          # 512 x 512 x 600 voxels, 15 classes
    python bench/big_volume.py --size 256 --slices 300  # a quicker look
    python bench/big_volume.py --skip-nnunet            # autounet alone (no nnU-Net install needed)

The test volume is synthetic: ``--slices`` x ``--size`` x ``--size`` voxels (numpy z, y, x) at 1 x 0.8 x 0.8 mm,
int16 HU-like intensities with 14 organ-like ellipsoids (15 classes with the background). Six small training cases
are made by the same generator at 1.5 x 1 x 1 mm, so both tools resample the big volume to a coarser grid and the
15 class outputs back up to 157 M voxels: the resampling of per-class outputs that makes prediction run out of
memory (nnU-Net issues #2912, #2540).

Both tools predict with the same network: nnU-Net plans and preprocesses the training cases, its network is narrowed
to ``--features`` channels at the first stage (quality is not the point; the tiles' forward passes would otherwise
take hours on a CPU), trains ``--train-iters`` iterations (nnUNetTrainer_CPUBench), and autounet installs that
fold with ``autounet install-model --from-nnunet``'s code. Printed: wall time, peak resident memory of the process
tree, the agreement of the two label maps (Dice over the foreground classes), and autounet's memory bound
(docs/predict.md, "Memory") beside its measured peak. Preprocessing alone is measured too (autounet's
preprocessing of the big volume in a child process).
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

from bench.common import (SHARED, MemoryCap, Measured, autounet_cmd, nnunet_bin, nnunet_env,  # noqa: E402
                          print_table, run_measured)


DATASET = "Dataset989_BigVolume"
TRAINER = "nnUNetTrainer_CPUBench"
CLASSES = 15
TRAIN_SHAPE = (80, 160, 160)
TRAIN_SPACING = (1.5, 1.0, 1.0)
TEST_SPACING = (1.0, 0.8, 0.8)


def organs(seed: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """14 ellipsoids as (centre, half-axes) in fractions of the body's box, and their HU, from ``seed``."""
    rng = np.random.default_rng(seed)
    found = []
    for label in range(1, CLASSES):
        centre = rng.uniform([0.2, 0.25, 0.2], [0.8, 0.75, 0.8])
        half = rng.uniform([0.05, 0.05, 0.05], [0.15, 0.12, 0.12])
        found.append((centre, half, float(rng.uniform(-100, 250)) + 20 * label))
    return found


def synthetic_ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An int16 CT-like image and its uint8 labels of ``shape`` (z, y, x), made slab by slab to bound memory."""
    image, labels = np.empty(shape, np.int16), np.zeros(shape, np.uint8)
    rng = np.random.default_rng(seed + 1)
    parts = organs(seed)
    y, x = np.ogrid[:shape[1], :shape[2]]
    body = ((y / shape[1] - 0.5) / 0.42) ** 2 + ((x / shape[2] - 0.5) / 0.45) ** 2 < 1
    for z in range(shape[0]):
        values = np.where(body, 40.0, -1000.0)
        for label, (centre, half, hu) in enumerate(parts, start=1):
            inside = (((z / shape[0] - centre[0]) / half[0]) ** 2 + ((y / shape[1] - centre[1]) / half[1]) ** 2
                      + ((x / shape[2] - centre[2]) / half[2]) ** 2) < 1
            values[inside] = hu
            labels[z][inside] = label
        image[z] = np.clip(values + rng.normal(0, 25, values.shape), -1024, 3000).astype(np.int16)
    return image, labels


def write_case(image: np.ndarray, spacing: tuple[float, float, float], path: Path) -> None:
    import SimpleITK as sitk

    written = sitk.GetImageFromArray(image)
    written.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    sitk.WriteImage(written, str(path), useCompression=True)


def make_data(work: Path, slices: int, size: int) -> tuple[Path, Path]:
    """nnU-Net raw dataset (6 small cases) and a folder with the big test volume; kept between runs."""
    raw = work / "nnunet" / "raw" / DATASET
    test = work / f"test_{slices}x{size}"
    if not (raw / "dataset.json").is_file():
        for folder in ("imagesTr", "labelsTr"):
            (raw / folder).mkdir(parents=True, exist_ok=True)
        for case in range(6):
            image, labels = synthetic_ct(TRAIN_SHAPE, seed=case)
            write_case(image, TRAIN_SPACING, raw / "imagesTr" / f"ct_{case:03d}_0000.nii.gz")
            write_case(labels, TRAIN_SPACING, raw / "labelsTr" / f"ct_{case:03d}.nii.gz")
        names = {"background": 0, **{f"organ_{k:02d}": k for k in range(1, CLASSES)}}
        (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": names,
                                                      "numTraining": 6, "file_ending": ".nii.gz"}, indent=2))
    if not any(test.glob("*.nii.gz")):
        test.mkdir(parents=True, exist_ok=True)
        image, _ = synthetic_ct((slices, size, size), seed=100)
        write_case(image, TEST_SPACING, test / "big_000_0000.nii.gz")
    return raw, test


def _check(measured: Measured, what: str) -> Measured:
    if measured.returncode != 0:
        print(measured.output[-4000:], file=sys.stderr)
        sys.exit(f"{what} failed (exit {measured.returncode})")
    return measured


def install_bench_trainer() -> None:
    """Copy the shared benchmark trainer into nnU-Net's package every time (an older copy may be there)."""
    python = str(Path(nnunet_bin("nnUNetv2_train")).parent / "python")
    done = run_measured([python, "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"])
    target = Path(done.output.strip().splitlines()[-1]) / "training" / "nnUNetTrainer" / f"{TRAINER}.py"
    shutil.copy(SHARED / "bench" / f"{TRAINER}.py", target)


def train_nnunet(env: dict, features: int, iterations: int) -> Path:
    """Plan and preprocess, narrow the network to ``features``, train fold 0 briefly; the fold folder."""
    identifier = DATASET.split("_")[0].removeprefix("Dataset")
    results = Path(env["nnUNet_results"]) / DATASET / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
    plans_file = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans.json"
    if not plans_file.is_file():
        _check(run_measured([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", identifier, "-c", "3d_fullres",
                             "-np", "2"], env=env), "nnU-Net plan_and_preprocess")
    plans = json.loads(plans_file.read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    narrowed = [min(features * 2 ** s, 8 * features) for s in range(len(arch["features_per_stage"]))]
    if arch["features_per_stage"] != narrowed:
        arch["features_per_stage"] = narrowed
        plans_file.write_text(json.dumps(plans, indent=2))
        if results.parent.exists():
            shutil.rmtree(results.parent)
    if not (results / "checkpoint_final.pth").is_file():
        install_bench_trainer()
        train_env = {**env, "BENCH_TRAIN_ITERS": str(iterations), "BENCH_VAL_ITERS": "1",
                     "BENCH_SKIP_FINAL_VAL": "1"}
        _check(run_measured([nnunet_bin("nnUNetv2_train"), identifier, "3d_fullres", "0", "-tr", TRAINER,
                             "-device", "cpu"], env=train_env), "nnU-Net train")
    return results


def install_in_autounet(work: Path, nnunet_fold: Path) -> Path:
    from autounet.inference.nnunet_import import import_nnunet_model

    installed = import_nnunet_model([nnunet_fold.parent], work / "autounet" / "results", folds=["0"], overwrite=True)
    return installed[0].folder / "fold_0"


def label_agreement(first: Path, second: Path) -> tuple[float, float]:
    """Two label maps compared: the mean Dice over the foreground classes present in either, and the share of
    voxels labelled alike (a class a few stray voxels hold in one map weighs as much as a large one in the mean)."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(first)))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(second)))
    scores = []
    for label in range(1, CLASSES):
        in_a, in_b = a == label, b == label
        total = int(in_a.sum()) + int(in_b.sum())
        if total:
            scores.append(2 * int((in_a & in_b).sum()) / total)
    return (float(np.mean(scores)) if scores else float("nan")), float(np.mean(a == b))


def preprocess_peak(fold: Path, test: Path) -> Measured:
    """autounet's preprocessing of the big volume alone, in a child process (peak memory of that step)."""
    code = ("import sys; from pathlib import Path; from autounet.io import read_image; "
            "from autounet.inference.model_folder import load_trained_configuration; "
            "from autounet.preprocessing.pipeline import preprocess_case; "
            "t = load_trained_configuration(Path(sys.argv[1])); image, geometry = read_image([Path(sys.argv[2])]); "
            "data, _, p = preprocess_case(image, geometry, None, t.plans, t.plan, 'big'); "
            "print('SHAPES', list(p.original_shape), list(p.shape_after_crop), list(data.shape[1:]))")
    image = sorted(test.glob("*.nii.gz"))[0]
    return _check(run_measured([sys.executable, "-c", code, str(fold), str(image)],
                               cwd=Path(__file__).resolve().parents[1]), "autounet preprocessing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_big_volume"))
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--features", type=int, default=4, help="first-stage features of the shared network")
    parser.add_argument("--train-iters", type=int, default=2)
    parser.add_argument("--skip-nnunet", action="store_true", help="predict with autounet only (nnU-Net still "
                        "trains the model unless it is already there)")
    parser.add_argument("--max-memory", default=None, help="passed to autounet predict --max-memory")
    parser.add_argument("--memory-cap", default=None, help="run autounet predict inside a memory cgroup with this "
                        "hard limit (e.g. 4.5G; needs root): it either completes within it or is killed")
    args = parser.parse_args()
    work = args.work.resolve()
    _, test = make_data(work, args.slices, args.size)
    env = nnunet_env(work / "nnunet")
    fold = install_in_autounet(work, train_nnunet(env, args.features, args.train_iters))
    import torch

    from autounet.inference.memory import PredictionMemory, parse_memory, tile_working_bytes
    from autounet.inference.predictor import tiles_per_pass
    from autounet.inference.model_folder import load_trained_configuration

    plan = load_trained_configuration(fold).plan
    print(f"model: patch {plan.patch_size}, features {plan.network.features_per_stage}, spacing {plan.spacing}",
          flush=True)
    voxels = args.slices * args.size * args.size
    rows, outputs = [], {}
    prep = preprocess_peak(fold, test)
    line = next(l for l in prep.output.splitlines() if l.startswith("SHAPES"))
    original, cropped, preprocessed = json.loads("[" + line.removeprefix("SHAPES ").replace("] [", "], [") + "]")
    passes = tiles_per_pass(torch.device("cpu"), plan.patch_size, plan.network.features_per_stage)
    tile = tile_working_bytes(CLASSES, plan.patch_size, plan.network.features_per_stage, passes, 8)
    memory = PredictionMemory(tuple(original), tuple(cropped), tuple(preprocessed), 1, CLASSES, 1, tile)
    print(f"autounet preprocessing alone: {prep.wall_s:.0f} s, peak {prep.peak_gb:.2f} GiB", flush=True)
    tools = ["autounet"] if args.skip_nnunet else ["nnU-Net", "autounet"]
    measured: dict[str, Measured] = {}
    for tool in tools:
        out = work / f"out_{tool}"
        if out.exists():
            shutil.rmtree(out)
        if tool == "nnU-Net":
            cmd = [nnunet_bin("nnUNetv2_predict"), "-i", str(test), "-o", str(out), "-d",
                   DATASET.split("_")[0].removeprefix("Dataset"), "-c", "3d_fullres", "-f", "0", "-tr", TRAINER,
                   "-device", "cpu", "--disable_progress_bar", "-npp", "1", "-nps", "1"]
            measured[tool] = _check(run_measured(cmd, env=env), "nnU-Net predict")
        else:
            cmd = autounet_cmd("predict", "-i", str(test), "-o", str(out), "-m", str(fold), "--device", "cpu")
            if args.max_memory:
                cmd += ["--max-memory", args.max_memory]
            cap = MemoryCap(parse_memory(args.memory_cap)) if args.memory_cap else None
            try:
                result = run_measured(cmd, cwd=Path(__file__).resolve().parents[1], cap=cap)
                if cap:
                    print(f"autounet under a {args.memory_cap} memory cap: exit {result.returncode}, "
                          f"{cap.oom_kills()} out-of-memory kill(s), peak charged to the cgroup "
                          f"{result.cap_peak_gb:.2f} GiB (page cache included)", flush=True)
            finally:
                if cap:
                    cap.remove()
            measured[tool] = _check(result, "autounet predict")
        outputs[tool] = out / "big_000.nii.gz"
        print(f"{tool}: {measured[tool].wall_s:.0f} s, peak {measured[tool].peak_gb:.2f} GiB "
              f"(anonymous {measured[tool].peak_anon_gb:.2f} GiB)", flush=True)
        stages = [line for line in measured[tool].output.splitlines() if line.startswith("time by stage:")]
        if stages:
            print(f"{tool} {stages[0]}", flush=True)
    on_disk = args.max_memory is not None and memory.peak_bytes(False) > parse_memory(args.max_memory)
    bound = memory.peak_bytes(on_disk=on_disk)
    print(f"preprocessed grid {preprocessed} ({np.prod(preprocessed) / 1e6:.0f} M voxels); per-class outputs "
          f"{memory.per_class_bytes() / 2**30:.1f} GiB, {'on disk' if on_disk else 'in memory'}")
    for tool in tools:
        rows.append([tool, measured[tool].wall_s, measured[tool].peak_gb, measured[tool].peak_anon_gb,
                     bound / 2**30 if tool == "autounet" else ""])
    if "nnU-Net" in measured:
        ours, theirs = measured["autounet"], measured["nnU-Net"]
        rows.append(["ratio autounet / nnU-Net", ours.wall_s / theirs.wall_s, ours.peak_gb / theirs.peak_gb,
                     ours.peak_anon_gb / theirs.peak_anon_gb, ""])
    print_table(f"one {args.slices}x{args.size}x{args.size} volume ({voxels / 1e6:.0f} M voxels, {CLASSES} classes), "
                f"mirroring TTA, CPU ({os.cpu_count()} cores)",
                ["tool", "wall s", "peak GiB (RSS)", "peak GiB (anonymous)", "autounet's stated bound GiB"], rows)
    if "nnU-Net" in outputs:
        dice, alike = label_agreement(outputs["nnU-Net"], outputs["autounet"])
        print(f"\nagreement of the label maps: mean Dice over foreground classes {dice:.4f}, voxels labelled "
              f"alike {100 * alike:.2f} %")
    print(f"preprocessing alone (autounet): {prep.wall_s:.0f} s, peak {prep.peak_gb:.2f} GiB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
