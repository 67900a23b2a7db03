"""Benchmark: autounet find-best on made-up cross-validation results for the real Hippocampus labels.

Two fake configurations predict every labelsTr case (5 folds): "a" erodes class 1 by one voxel, "b" shifts
class 2 by one voxel and adds a stray voxel of class 1; both save probabilities, so the ensemble is scored
too. Prints wall time and peak memory of ``autounet find-best`` (nnU-Net's find_best_configuration needs its
own trained model folders, so it is not run here).

Usage: python bench/find_best.py [--cases 260] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, autounet_cmd, print_table, run_measured  # noqa: E402


def predictions(labels: np.ndarray) -> dict[str, np.ndarray]:
    a = labels.copy()
    a[(labels == 1) & ~ndimage.binary_erosion(labels == 1)] = 0
    b = labels.copy()
    b[labels == 2] = 0
    b[np.roll(labels == 2, 1, axis=2) & (b == 0)] = 2
    b[0, 0, 0] = 1
    return {"a": a, "b": b}


def one_hot(labels: np.ndarray, confidence: float) -> np.ndarray:
    p = np.full((3, *labels.shape), (1 - confidence) / 2, np.float16)
    for k in range(3):
        p[k][labels == k] = confidence
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=260)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from autounet.io import read_label, write_segmentation

    source = SHARED_DATA / "Dataset004_Hippocampus"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = root / "raw" / source.name
        (raw / "labelsTr").mkdir(parents=True)
        shutil.copy(source / "dataset.json", raw / "dataset.json")
        files = sorted((source / "labelsTr").glob("*.nii.gz"))[: args.cases]
        for i, path in enumerate(files):
            shutil.copy(path, raw / "labelsTr" / path.name)
            labels, geometry = read_label(path)
            case = path.name[: -len(".nii.gz")]
            for name, predicted in predictions(labels).items():
                folder = root / "results" / source.name / name / f"fold_{i % 5}" / "validation"
                write_segmentation(predicted, geometry, folder / path.name)
                np.savez_compressed(folder / f"{case}.npz", probabilities=one_hot(predicted, 0.9 if name == "a" else 0.6))
        result = run_measured(autounet_cmd("find-best", source.name, "--root", str(root), "--workers",
                                           str(args.workers)))
        if result.returncode != 0:
            sys.exit(result.output[-3000:])
        choice = json.loads((root / "results" / source.name / "inference.json").read_text())
    print(result.output[-1500:])
    print_table(f"find-best on {len(files)} Hippocampus cases, 2 configurations + 1 ensemble, "
                f"{args.workers} workers", ["tool", "wall s", "peak GB", "chosen", "postprocessing"],
                [["autounet", result.wall_s, result.peak_gb, " + ".join(choice["configurations"]),
                  json.dumps(choice["postprocessing"])]])


if __name__ == "__main__":
    main()
