"""The README's first run, timed: ``autounet run examples/Dataset004_Hippocampus --budget B --folds 0 -c 2d``.

    python bench/demo.py                       # 3 runs of the README's command, each in a fresh data root
    python bench/demo.py --budget 2m --runs 1 -c ''   # planning chooses the configuration (and fits it) itself

Each run starts from nothing (a new ``--root``: fingerprint, plans and cache are made again), as a new user's
first run does (no remembered step timings either). Printed per run: wall seconds of the whole command (install excluded), the configuration trained,
fold 0's validation mean foreground Dice as training wrote it (validation/summary.json) and after find-best's
postprocessing (inference.json), and each step's seconds as `run` printed them; then the medians.
Run it on an otherwise idle machine: a duration budget depends on the load.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import autounet_cmd, print_table, run_measured  # noqa: E402

DATASET = "Dataset004_Hippocampus"


def one_run(budget: str, root: Path, configuration: str | None) -> list:
    chosen = ["-c", configuration] if configuration else []
    measured = run_measured(autounet_cmd("run", str(REPO / "examples" / DATASET), "--budget", budget, "--folds",
                                         "0", *chosen, "--root", str(root)),
                            env={"COLUMNS": "200", "AUTOUNET_CACHE_DIR": str(root / "timing-cache")})
    if measured.returncode != 0:
        raise SystemExit(f"the run failed (exit {measured.returncode}):\n{measured.output[-3000:]}")
    results = root / "results" / DATASET
    choice = json.loads((results / "inference.json").read_text())
    configuration = choice["configurations"][0]
    summary = json.loads((results / configuration / "fold_0" / "validation" / "summary.json").read_text())
    steps = re.search(r"^time: (.*)$", measured.output, re.MULTILINE)
    return [measured.wall_s, configuration, summary["foreground_mean"]["dice"],
            choice["foreground_dice_postprocessed"], steps.group(1) if steps else "?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="2m")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--configuration", "-c", default="2d",
                        help="the configuration the README's command names (default 2d; '' lets planning choose)")
    args = parser.parse_args()
    rows = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="autounet_demo_") as root:
            rows.append(one_run(args.budget, Path(root), args.configuration or None))
        print(" | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in rows[-1]), flush=True)
    named = f" -c {args.configuration}" if args.configuration else ""
    print_table(f"`autounet run examples/{DATASET} --budget {args.budget} --folds 0{named}`, {args.runs} run(s)",
                ["wall s", "configuration", "fold-0 Dice", "after postprocessing", "steps"], rows)
    print(f"\nmedian wall {statistics.median(r[0] for r in rows):.0f} s; median fold-0 validation Dice "
          f"{statistics.median(r[2] for r in rows):.3f} ({statistics.median(r[3] for r in rows):.3f} after "
          f"postprocessing)")


if __name__ == "__main__":
    main()
