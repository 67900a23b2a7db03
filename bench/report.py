"""How long ``autounet report`` takes on the full Hippocampus dataset (260 cases, five validated folds).

The run is built the way tests/report build theirs (real fingerprint, plans, evaluation and find-best; no
network trained; validation predictions are eroded references), then the report is written three times and the
median time printed. nnU-Net has no report to compare with, so this prints seconds, not ratios.

    python bench/report.py [--work /tmp/report_bench]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import SHARED_DATA  # noqa: E402
from tests.report.factory import make_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/report_bench"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raw = SHARED_DATA / "Dataset004_Hippocampus"
    if not (raw / "dataset.json").is_file():
        sys.exit(f"{raw}: not found (the shared data folder must be beside the checkout).")
    shutil.rmtree(args.work, ignore_errors=True)
    start = time.perf_counter()
    location = make_run(args.work, raw, "3d_fullres", folds=5)
    print(f"built a 5-fold run of {raw.name} in {time.perf_counter() - start:.1f} s")

    from autounet.report import write_report

    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        path = write_report(location)
        seconds.append(time.perf_counter() - start)
    cases = sum(1 for _ in location.results.glob("3d_fullres/fold_*/validation/*.nii.gz"))
    print(f"report of {cases} validation cases: median {statistics.median(seconds):.2f} s over {args.repeats} "
          f"(each: {', '.join(f'{s:.2f}' for s in seconds)}), {path.stat().st_size / 1e6:.2f} MB, {path}")


if __name__ == "__main__":
    main()
