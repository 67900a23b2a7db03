"""Fingerprint speed, memory and agreement: autounet vs nnU-Net v2 on the real Hippocampus set (260 cases).

Runs ``python -m autounet fingerprint`` and ``nnUNetv2_extract_fingerprint -d 4 -np 2`` on the same files, each
with 2 worker processes, in one run; prints wall time, peak memory of the whole process tree, and the largest
relative difference between the two tools' foreground intensity statistics.

Usage: python bench/fingerprint.py [--dataset PATH] [--workers 2] [--repeats 1]
(nnU-Net is taken from $NNUNET_VENV, default ../nnunet-venv beside the checkout.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (SHARED_DATA, Measured, autounet_cmd, link_dataset, nnunet_bin, nnunet_env,  # noqa: E402
                          print_table, run_measured)

STATISTICS = ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")


def relative_difference(ours: float, theirs: float) -> float:
    """|ours - theirs| relative to nnU-Net's value (absolute when that is zero)."""
    scale = abs(theirs)
    return abs(ours - theirs) / scale if scale > 0 else abs(ours - theirs)


def run_checked(label: str, cmd: list[str], env: dict | None = None) -> Measured:
    measured = run_measured(cmd, env=env)
    if measured.returncode != 0:
        sys.exit(f"{label} failed (exit {measured.returncode}):\n{measured.output[-3000:]}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=SHARED_DATA / "Dataset004_Hippocampus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool (alternating); medians reported")
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    dataset_id = str(int(dataset.name[len("Dataset"):len("Dataset") + 3]))
    num_cases = json.loads((dataset / "dataset.json").read_text())["numTraining"]

    ours_runs, theirs_runs = [], []
    with tempfile.TemporaryDirectory(prefix="bench_fingerprint_") as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats):
            ours_root = tmp / f"ours{repeat}"
            ours_runs.append(run_checked("autounet fingerprint", autounet_cmd(
                "fingerprint", str(dataset), "--workers", str(args.workers), "--root", str(ours_root))))
            ours = json.loads((ours_root / "preprocessed" / dataset.name / "fingerprint.json").read_text())

            env = nnunet_env(tmp / f"nnunet{repeat}")
            link_dataset(dataset, Path(env["nnUNet_raw"]))
            theirs_runs.append(run_checked("nnUNetv2_extract_fingerprint", [
                nnunet_bin("nnUNetv2_extract_fingerprint"), "-d", dataset_id, "-np", str(args.workers)], env))
            theirs = json.loads((Path(env["nnUNet_preprocessed"]) / dataset.name /
                                 "dataset_fingerprint.json").read_text())

    def median(runs: list[Measured], attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in runs)

    ours_wall, theirs_wall = median(ours_runs, "wall_s"), median(theirs_runs, "wall_s")
    ours_peak, theirs_peak = median(ours_runs, "peak_gb"), median(theirs_runs, "peak_gb")
    print_table(f"Fingerprint of {dataset.name} ({num_cases} cases, {args.workers} workers, "
                f"median of {args.repeats} run(s))",
                ["tool", "wall s", "peak GiB (process tree)"],
                [["autounet", ours_wall, ours_peak], ["nnU-Net v2", theirs_wall, theirs_peak],
                 ["ratio nnU-Net / autounet", theirs_wall / ours_wall, theirs_peak / ours_peak]])

    rows, worst = [], 0.0
    theirs_channels = theirs["foreground_intensity_properties_per_channel"]
    for channel, stats in enumerate(ours["channels"]):
        reference = theirs_channels[str(channel)]
        for name in STATISTICS:
            difference = relative_difference(stats[name], reference[name])
            worst = max(worst, difference)
            rows.append([f"{channel} {name}", f"{stats[name]:.6g}", f"{reference[name]:.6g}", f"{difference:.2e}"])
    print_table("Foreground intensity statistics", ["channel statistic", "autounet", "nnU-Net v2", "relative diff"],
                rows)
    print(f"\nspeed-up {theirs_wall / ours_wall:.1f}x (goal >= 3x); largest relative difference "
          f"{worst:.2e} (goal <= 1e-2)")


if __name__ == "__main__":
    main()
