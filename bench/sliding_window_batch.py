"""2D sliding-window inference over a volume on the CPU: one tile per forward pass against tiles of several slices
per pass (the rule ``tiles_per_pass`` applies on the CPU).

    python bench/sliding_window_batch.py                    # 2 x 155 x 240 x 240, 64 x 64 tiles, TTA on
    python bench/sliding_window_batch.py --slices 20 --repeats 1   # a quicker look

Both settings predict the same volume with the same network in this process, alternating, so they see the same
load; the table gives the median seconds of each and their ratio, and the largest logit difference between them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from autounet.inference.predictor import tiles_per_pass
from autounet.inference.sliding_window import WindowSettings, predict_logits
from autounet.network import NetworkConfig, build_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=155)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tta", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    stages = 5
    features = [min(args.features * 2 ** s, 320) for s in range(stages)]
    config = NetworkConfig(2, 2, 5, features, [[3, 3]] * stages, [[1, 1]] + [[2, 2]] * (stages - 1),
                           deep_supervision=False)
    network = build_network(config).eval()
    volume = np.random.default_rng(0).normal(size=(2, args.slices, args.size, args.size)).astype(np.float32)
    patch = (args.patch, args.patch)
    rule = tiles_per_pass(torch.device("cpu"), patch, features)
    settings = {n: WindowSettings(patch, (16, 16), 0.5, not args.no_tta, n) for n in (1, rule)}
    seconds: dict[int, list[float]] = {n: [] for n in settings}
    logits = {}
    for _ in range(args.repeats):
        for n, setting in settings.items():
            start = time.perf_counter()
            logits[n] = predict_logits(network, volume, 5, setting)
            seconds[n].append(time.perf_counter() - start)
    one, grouped = statistics.median(seconds[1]), statistics.median(seconds[rule])
    print(f"volume 2 x {args.slices} x {args.size} x {args.size}, 2D tiles {args.patch} x {args.patch}, features "
          f"{features}, TTA {'off' if args.no_tta else 'on'}, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeat(s)")
    print("| inputs per pass | median s | runs |")
    print("|---|---|---|")
    for n in settings:
        print(f"| {n} | {statistics.median(seconds[n]):.1f} | {', '.join(f'{s:.1f}' for s in seconds[n])} |")
    print(f"speed-up of {rule} inputs per pass over 1: {one / grouped:.2f}x; largest logit difference "
          f"{float((logits[1] - logits[rule]).abs().max()):.2e}")


if __name__ == "__main__":
    main()
