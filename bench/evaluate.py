"""Benchmark: evaluate 50 Hippocampus label maps, autounet vs nnU-Net v2, in one run.

Two prediction folders: the labels themselves (Dice 1) and a spoiled copy (class 1 eroded by one voxel,
class 2 shifted by one voxel), so Dice means can be compared between the tools. nnU-Net computes no surface
metrics; autounet is timed with and without --surface. Each command runs ``--repeats`` times; the median is
reported.

Usage: python bench/evaluate.py [--cases 50] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, autounet_cmd, nnunet_bin, print_table, run_measured  # noqa: E402


def spoil(labels: np.ndarray) -> np.ndarray:
    """Class 1 eroded by one voxel, class 2 shifted by one voxel along x."""
    out = np.zeros_like(labels)
    out[ndimage.binary_erosion(labels == 1)] = 1
    out[np.roll(labels == 2, 1, axis=2) & (out == 0)] = 2
    return out


def prepare(work: Path, n_cases: int) -> tuple[Path, Path, Path]:
    from autounet.io import read_label, write_segmentation

    source = SHARED_DATA / "Dataset004_Hippocampus" / "labelsTr"
    if not source.is_dir():
        sys.exit(f"{source} is not available")
    ref, same, spoiled = work / "ref", work / "same", work / "spoiled"
    for folder in (ref, same, spoiled):
        folder.mkdir(parents=True)
    for path in sorted(source.glob("*.nii.gz"))[:n_cases]:
        shutil.copy(path, ref / path.name)
        shutil.copy(path, same / path.name)
        labels, geometry = read_label(path)
        write_segmentation(spoil(labels), geometry, spoiled / path.name)
    return ref, same, spoiled


def measure(cmd: list[str], repeats: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        result = run_measured(cmd)
        if result.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{result.output[-2000:]}")
        runs.append(result)
    return statistics.median(r.wall_s for r in runs), max(r.peak_gb for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="nnU-Net's -np")
    parser.add_argument("--our-workers", type=int, default=None,
                        help="autounet's --workers [default: its own choice: serial while that is faster]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref, same, spoiled = prepare(work, args.cases)
        rows, dice_rows = [], []
        for name, pred in (("labels vs themselves", same), ("labels vs spoiled", spoiled)):
            ours_out, ours_surface_out, nn_out = work / f"o_{name}", work / f"s_{name}", work / f"n_{name}.json"
            base = ["evaluate", "--ref", str(ref), "--pred", str(pred)]
            if args.our_workers:
                base += ["--workers", str(args.our_workers)]
            ours = measure(autounet_cmd(*base, "--output", str(ours_out)), args.repeats)
            ours_surface = measure(autounet_cmd(*base, "--surface", "--output", str(ours_surface_out)), args.repeats)
            nnunet = measure([nnunet_bin("nnUNetv2_evaluate_simple"), str(ref), str(pred), "-l", "1", "2",
                              "-np", str(args.workers), "-o", str(nn_out)], args.repeats)
            rows.append([name, ours[0], ours_surface[0], nnunet[0], ours[0] / nnunet[0], ours_surface[0] / nnunet[0],
                         ours[1], nnunet[1]])
            summary = json.loads((ours_surface_out / "summary.json").read_text())
            theirs = json.loads(nn_out.read_text())["mean"]
            for entry in summary["per_class"]:
                dice_rows.append([name, entry["name"], entry["dice"]["mean"], theirs[entry["name"]]["Dice"],
                                  entry["hd95_mm"]["mean"], entry["nsd"]["mean"]])
    print_table(f"evaluate {args.cases} Hippocampus cases; nnU-Net -np {args.workers}, autounet --workers "
                f"{args.our_workers or 'default'}; median of {args.repeats} runs (s)",
                ["folders", "autounet", "autounet --surface", "nnU-Net", "ratio", "ratio --surface",
                 "autounet peak GB", "nnU-Net peak GB"], rows)
    print_table("mean Dice per class (and autounet's surface metrics)",
                ["folders", "class", "autounet Dice", "nnU-Net Dice", "HD95 mm", "NSD@1mm"], dice_rows)


if __name__ == "__main__":
    main()
