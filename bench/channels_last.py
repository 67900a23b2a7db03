"""Forward-pass time of U-Nets on the CPU with inputs and weights in the default (channels-first) memory order
against channels-last, at the precision ``autounet predict`` would use here (bfloat16 autocast where the CPU has
it). This is the measurement behind :func:`autounet.inference.predictor.uses_channels_last`.

    python bench/channels_last.py                 # all networks below, 5 passes each way
    python bench/channels_last.py --only big_volume --repeats 3
    python bench/channels_last.py --precision float32   # as on CPUs without bfloat16

Both orders run the same weights on the same random input in this process, alternating pass by pass, so they
see the same load; the table gives the median seconds per pass, the ratio, and the largest logit difference.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from autounet.inference.predictor import resolve_precision
from autounet.inference.sliding_window import channels_last_format
from autounet.network import NetworkConfig, build_network


def _config(dims: int, features: list[int], strides: list[list[int]], classes: int) -> NetworkConfig:
    return NetworkConfig(dims, 1, classes, features, [[3] * dims] * len(features), strides, deep_supervision=False)


_3D_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 4
NETWORKS = {
    # name: (network, patch); the first two are the plans autounet made for bench/big_volume.py and Hippocampus
    "big_volume": (_config(3, [4, 8, 16, 32, 32, 32], _3D_STRIDES + [[1, 2, 2]], 15), (80, 160, 160)),
    "narrow_3d_8": (_config(3, [8, 16, 32, 64, 64, 64], _3D_STRIDES + [[1, 2, 2]], 15), (80, 160, 160)),
    "narrow_3d_16": (_config(3, [16, 32, 64, 128, 128, 128], _3D_STRIDES + [[1, 2, 2]], 15), (80, 160, 160)),
    "hippocampus_3d": (_config(3, [32, 64, 128, 256], _3D_STRIDES[:4], 3), (40, 56, 40)),
    "wide_3d": (_config(3, [32, 64, 128, 256, 320], _3D_STRIDES, 4), (96, 96, 96)),
    "narrow_2d_4": (_config(2, [4, 8, 16, 32, 64, 64], [[1, 1]] + [[2, 2]] * 5, 2), (512, 512)),
    "narrow_2d_8": (_config(2, [8, 16, 32, 64, 128, 128], [[1, 1]] + [[2, 2]] * 5, 2), (512, 512)),
    "isbi_2d": (_config(2, [32, 64, 128, 256, 512, 512], [[1, 1]] + [[2, 2]] * 5, 2), (512, 512)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(NETWORKS), help="networks to time (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per memory order")
    parser.add_argument("--precision", default="auto", help="as autounet predict's --precision (default: auto)")
    args = parser.parse_args()

    dtype = resolve_precision(args.precision, torch.device("cpu"))
    print(f"CPU, {torch.get_num_threads()} threads, autocast {dtype}, {args.repeats} passes per order after one "
          "warm-up pass each")
    print("| network | patch | features | channels-first s | channels-last s | speed-up | max logit diff |")
    print("|---|---|---|---|---|---|---|")
    for name in args.only or NETWORKS:
        config, patch = NETWORKS[name]
        torch.manual_seed(0)
        first = build_network(config).eval()
        last = copy.deepcopy(first).to(memory_format=channels_last_format(len(patch)))
        x = torch.randn(1, 1, *patch)
        inputs = {"first": (first, x), "last": (last, x.contiguous(memory_format=channels_last_format(len(patch))))}
        seconds: dict[str, list[float]] = {key: [] for key in inputs}
        outputs = {}
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            for key, (network, data) in inputs.items():
                network(data)
            for _ in range(args.repeats):
                for key, (network, data) in inputs.items():
                    start = time.perf_counter()
                    outputs[key] = network(data).float()
                    seconds[key].append(time.perf_counter() - start)
        one, other = statistics.median(seconds["first"]), statistics.median(seconds["last"])
        diff = (outputs["first"] - outputs["last"]).abs().max().item()
        print(f"| {name} | {'x'.join(map(str, patch))} | {config.features_per_stage[0]}-"
              f"{config.features_per_stage[-1]} | {one:.3f} | {other:.3f} | {one / other:.2f}x | {diff:.3g} |",
              flush=True)


if __name__ == "__main__":
    main()
