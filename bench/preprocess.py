"""Benchmark: `autounet preprocess` against nnU-Net v2's `nnUNetv2_preprocess` (3d_fullres, 2 workers each).

Datasets: all 260 Hippocampus cases (../shared/data) and a synthetic anisotropic CT-like set
(../shared/bench/make_synthetic.py --kind ct). Each tool first fingerprints and plans (not timed),
then its preprocessing command is timed, with the peak memory of its whole process tree. The two
tools' arrays are then compared case by case (nnU-Net stores blosc2 ``.b2nd`` files, read with its
own venv's Python).

Two variants also resample (both tools' plans edited to the same target spacing), since both
datasets are planned at their own spacing.

Usage: python bench/preprocess.py [--work /tmp/bench_preprocess] [--ct-cases 20]
                                  [--datasets hippo ct hippo-resampled ct-resampled]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (NNUNET_VENV, REPO, SHARED, SHARED_DATA, autounet_cmd, link_dataset,  # noqa: E402
                          nnunet_bin, nnunet_env, print_table, run_measured)

WORKERS = "2"
VARIANTS = {
    "hippo": ("hippo", None),
    "ct": ("ct", None),
    # The planned spacing is each dataset's own, so nothing is resampled above; these variants set the
    # 3d_fullres target spacing in both tools' plans to exercise resampling (isotropic, and anisotropic
    # with the thick z axis resampled on its own).
    "hippo-resampled": ("hippo", [0.8, 0.8, 0.8]),
    "ct-resampled": ("ct", [2.0, 1.1, 0.7]),
}

# Run with nnU-Net's Python (it has blosc2): compares its preprocessed cases with ours, prints JSON.
COMPARE = r"""
import json, sys
from pathlib import Path
import numpy as np
import blosc2
theirs, ours = Path(sys.argv[1]), Path(sys.argv[2])
result = {"cases": 0, "shape_mismatches": [], "max_abs_diff": 0.0, "worst_case": "", "seg_voxels": 0,
          "seg_differing": 0, "max_abs_value": 0.0}
for path in sorted(theirs.glob("*_seg.b2nd")):
    case = path.name[: -len("_seg.b2nd")]
    data_t = blosc2.open(urlpath=str(theirs / f"{case}.b2nd"), mode="r")[:]
    seg_t = blosc2.open(urlpath=str(path), mode="r")[:]
    if not (ours / f"{case}.npy").is_file():
        result["shape_mismatches"].append(f"{case}: missing in autounet")
        continue
    data_o = np.load(ours / f"{case}.npy", allow_pickle=False)
    seg_o = np.load(ours / f"{case}_seg.npy", allow_pickle=False)
    result["cases"] += 1
    if data_t.shape != data_o.shape or seg_t.shape != seg_o.shape:
        result["shape_mismatches"].append(f"{case}: nnU-Net {data_t.shape} autounet {data_o.shape}")
        continue
    diff = float(np.abs(data_t.astype(np.float64) - data_o).max())
    result["max_abs_value"] = max(result["max_abs_value"], float(np.abs(data_t).max()))
    if diff >= result["max_abs_diff"]:
        result["max_abs_diff"], result["worst_case"] = diff, case
    result["seg_voxels"] += int(seg_t.size)
    result["seg_differing"] += int((seg_t != seg_o).sum())
print(json.dumps(result))
"""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check(measured, what: str) -> None:
    if measured.returncode != 0:
        print(measured.output[-4000:])
        sys.exit(f"{what} failed with exit code {measured.returncode}")


def prepare_ct(work: Path, n_cases: int) -> Path:
    folder = work / "data" / "Dataset990_SynthCT"
    if not (folder / "dataset.json").is_file():
        subprocess.run([sys.executable, str(SHARED / "bench" / "make_synthetic.py"), "--out", str(folder),
                        "--kind", "ct", "--n", str(n_cases), "--seed", "0", "--n-test", "0"], check=True)
    return folder


def _keep_original(path: Path) -> dict:
    """The plans file as the planner wrote it (kept aside the first time a variant edits it)."""
    original = path.with_name(path.stem + ".original.json")
    if not original.is_file():
        shutil.copyfile(path, original)
    return json.loads(original.read_text())


def run_autounet(source: Path, work: Path, spacing: list[float] | None) -> tuple[object, Path]:
    root = work / "autounet"
    link_dataset(source, root / "raw")
    env = {"AUTOUNET_HOME": str(root)}
    name = source.name
    plans_file = root / "preprocessed" / name / "plans.json"
    if not plans_file.is_file():
        for stage in (["fingerprint", name, "--workers", WORKERS], ["plan", name, "--device", "cpu"]):
            check(run_measured(autounet_cmd(*stage), env=env, cwd=REPO), f"autounet {stage[0]}")
    plans = _keep_original(plans_file)
    if spacing:
        plans["configurations"]["3d_fullres"]["spacing"] = spacing
    plans_file.write_text(json.dumps(plans, indent=2))
    identifier = plans["configurations"]["3d_fullres"]["data_identifier"]
    shutil.rmtree(root / "preprocessed" / name / identifier, ignore_errors=True)
    measured = run_measured(autounet_cmd("preprocess", name, "-c", "3d_fullres", "--workers", WORKERS), env=env,
                            cwd=REPO)
    check(measured, "autounet preprocess")
    return measured, root / "preprocessed" / name / identifier


def run_nnunet(source: Path, work: Path, spacing: list[float] | None) -> tuple[object, Path]:
    base = work / "nnunet"
    env = nnunet_env(base)
    link_dataset(source, base / "raw")
    dataset_id = str(int(source.name[len("Dataset"):len("Dataset") + 3]))
    plans_file = base / "preprocessed" / source.name / "nnUNetPlans.json"
    if not plans_file.is_file():
        check(run_measured([nnunet_bin("nnUNetv2_extract_fingerprint"), "-d", dataset_id, "-np", WORKERS],
                           env=env), "nnUNetv2_extract_fingerprint")
        check(run_measured([nnunet_bin("nnUNetv2_plan_experiment"), "-d", dataset_id], env=env),
              "nnUNetv2_plan_experiment")
    plans = _keep_original(plans_file)
    if spacing:
        plans["configurations"]["3d_fullres"]["spacing"] = spacing
    plans_file.write_text(json.dumps(plans, indent=2))
    out = base / "preprocessed" / source.name / "nnUNetPlans_3d_fullres"
    shutil.rmtree(out, ignore_errors=True)
    measured = run_measured([nnunet_bin("nnUNetv2_preprocess"), "-d", dataset_id, "-c", "3d_fullres", "-np",
                             WORKERS], env=env)
    check(measured, "nnUNetv2_preprocess")
    return measured, out


def compare(theirs: Path, ours: Path) -> dict:
    python = str(NNUNET_VENV / "bin" / "python")
    done = subprocess.run([python, "-c", COMPARE, str(theirs), str(ours)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"comparison failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_preprocess"))
    parser.add_argument("--ct-cases", type=int, default=20)
    parser.add_argument("--datasets", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    timing_rows, compare_rows = [], []
    for key in args.datasets:
        dataset, spacing = VARIANTS[key]
        source = SHARED_DATA / "Dataset004_Hippocampus" if dataset == "hippo" else prepare_ct(args.work,
                                                                                              args.ct_cases)
        label = source.name + (f" at {'x'.join(f'{s:g}' for s in spacing)} mm" if spacing else "")
        work = args.work / dataset  # variants reuse their dataset's fingerprint and plans
        ours, our_folder = run_autounet(source, work, spacing)
        theirs, their_folder = run_nnunet(source, work, spacing)
        our_disk, their_disk = folder_bytes(our_folder) / 2**20, folder_bytes(their_folder) / 2**20
        timing_rows.append([label, f"{theirs.wall_s:.1f}", f"{ours.wall_s:.1f}",
                            f"{theirs.wall_s / ours.wall_s:.2f}x", f"{theirs.peak_gb:.2f}", f"{ours.peak_gb:.2f}",
                            f"{ours.peak_gb / theirs.peak_gb:.2f}", f"{their_disk:.0f}", f"{our_disk:.0f}"])
        result = compare(their_folder, our_folder)
        mismatched = result["shape_mismatches"]
        compare_rows.append([label, result["cases"], "yes" if not mismatched else f"no ({mismatched[:3]})",
                             f"{result['max_abs_diff']:.2e} ({result['worst_case']})",
                             f"{result['max_abs_value']:.3g}",
                             f"{result['seg_differing']} / {result['seg_voxels']}"])
    print_table("preprocess 3d_fullres, 2 workers each: nnU-Net v2 vs autounet",
                ["dataset", "nnU-Net s", "autounet s", "speed-up", "nnU-Net peak GiB", "autounet peak GiB",
                 "memory ratio", "nnU-Net disk MiB", "autounet disk MiB"], timing_rows)
    print_table("same case, both tools' arrays",
                ["dataset", "cases", "same shapes", "max |image diff| (case)", "max |image value|",
                 "label voxels differing"], compare_rows)


if __name__ == "__main__":
    main()
