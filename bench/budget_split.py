"""Where a `run --budget` goes: wall time, each step, the fold's split, iterations and Dice (issue 26's table).

    python bench/make_large_volume.py --out /tmp/lv/Dataset990_LargeVolume         # the synthetic large volumes
    python bench/budget_split.py /tmp/lv/Dataset990_LargeVolume --budget 10m
    python bench/budget_split.py examples/Dataset004_Hippocampus --budget 2m -c 2d

Each run starts from nothing (a fresh ``--root``: fingerprint, plans and cache made again, no remembered step
timings), as a new user's first run does, and trains fold 0. Printed: the wall time of the whole command against
the budget, `run`'s time per step, the fold's split of its share (setup and what it went to, training
iterations, pseudo-Dice, checkpoints and logs, final validation), iterations, and fold 0's validation mean
foreground Dice. Run it on an otherwise idle machine: a duration budget depends on the load.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import autounet_cmd, run_measured  # noqa: E402
from autounet.planning.time_budget import parse_duration  # noqa: E402


def one_run(dataset: Path, budget: str, configuration: str | None, root: Path) -> dict:
    chosen = ["-c", configuration] if configuration else []
    measured = run_measured(autounet_cmd("run", str(dataset), "--budget", budget, "--folds", "0", "--no-predict",
                                         *chosen, "--root", str(root)),
                            env={"COLUMNS": "200", "AUTOUNET_CACHE_DIR": str(root / "timing-cache")})
    (root / "output.txt").write_text(measured.output)
    if measured.returncode != 0:
        raise SystemExit(f"the run failed (exit {measured.returncode}):\n{measured.output[-3000:]}")
    results = root / "results" / dataset.name
    configuration = json.loads((results / "inference.json").read_text())["configurations"][0]
    fold = results / configuration / "fold_0"
    config = json.loads((fold / "training_config.json").read_text())
    timing = config["budget_timing"]
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    steps = dict(re.findall(r"(verify \+ fingerprint|plan|preprocess|train \+ validate|find-best|report) (\d+) s",
                            " ".join(measured.output.split())))
    printed = re.search(r"training iterations \d+ s \(\d+ %, (\d+) iterations\)", " ".join(measured.output.split()))
    iterations = int(printed.group(1)) if printed else 0
    return {"wall": measured.wall_s, "configuration": configuration, "steps": steps, "timing": timing,
            "iterations": iterations, "dice": summary["foreground_mean"]["dice"], "output": measured.output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a raw dataset folder (DatasetXXX_Name)")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("-c", "--configuration", default=None, help="train this configuration (default: planning's)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a new folder to run in and keep (the data root and the run's output, output.txt)")
    args = parser.parse_args()
    budget = parse_duration(args.budget)
    with tempfile.TemporaryDirectory(prefix="autounet-budget-") as folder:
        root = args.keep or Path(folder)
        if args.keep:
            root.mkdir(parents=True)  # a new folder: an old run's root would not be a first run
        run = one_run(args.dataset.resolve(), args.budget, args.configuration, root)
    timing = run["timing"]
    spent = timing.get("spent_seconds", {})
    print(f"{args.dataset.name}, run --budget {args.budget} --folds 0 ({run['configuration']}):")
    print(f"  wall time of the command   {run['wall']:.0f} s = {100 * run['wall'] / budget:.0f} % of the budget")
    print("  steps as run printed them  " + ", ".join(f"{k} {v} s" for k, v in run["steps"].items()))
    print(f"  the fold's share           {timing['budget_seconds']:.0f} s")
    print(f"  setup parts                " + ", ".join(f"{k} {v} s" for k, v in timing.get("setup_parts", {}).items()))
    for part, seconds in spent.items():
        print(f"  {part:<26} {seconds:.0f} s = {100 * seconds / budget:.0f} % of the whole budget")
    print(f"  training iterations run    {run['iterations']}")
    print(f"  fold-0 validation Dice     {run['dice']:.3f} (mean over foreground classes)")


if __name__ == "__main__":
    main()
