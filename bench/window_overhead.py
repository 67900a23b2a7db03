"""What sliding-window prediction costs beyond the network's forward passes, on the CPU.

The network is the one ``bench/big_volume.py`` predicts with (15 classes, 4-32 features, patch 80x160x160; random
weights), the image a preprocessed volume of ``--tiles-y`` x ``--tiles-x`` tiles at step 0.5 with mirroring TTA,
the settings those ``autounet predict`` chooses on this machine (precision, memory order, inputs per pass). In one
process, alternating: ``predict_logits`` over the volume, and the same number of bare forward passes of one tile.
The difference is the cost of flipping, summing and weighting the logits (on the big volume, 1800 passes).

    python bench/window_overhead.py                  # 2 x 2 tiles, 3 repeats
    python bench/window_overhead.py --precision float32
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from autounet.inference.predictor import resolve_precision, tiles_per_pass, uses_channels_last
from autounet.inference.sliding_window import (WindowSettings, mirror_axes, predict_logits, tile_boxes,
                                               to_memory_format)
from autounet.network import NetworkConfig, build_network

PATCH = (80, 160, 160)
FEATURES = [4, 8, 16, 32, 32, 32]
STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 4 + [[1, 2, 2]]
CLASSES = 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles-y", type=int, default=2)
    parser.add_argument("--tiles-x", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="as autounet predict's --precision (default: auto)")
    args = parser.parse_args()

    cpu = torch.device("cpu")
    dtype = resolve_precision(args.precision, cpu)
    config = NetworkConfig(3, 1, CLASSES, FEATURES, [[3, 3, 3]] * len(FEATURES), STRIDES, deep_supervision=False)
    divisor = tuple(config.total_downsampling())
    settings = WindowSettings(PATCH, divisor, 0.5, True, tiles_per_pass(cpu, PATCH, FEATURES), dtype,
                              channels_last=uses_channels_last(cpu, PATCH, FEATURES))
    torch.manual_seed(0)
    network = to_memory_format(build_network(config).eval(), settings)
    shape = (PATCH[0], PATCH[1] * (args.tiles_y + 1) // 2, PATCH[2] * (args.tiles_x + 1) // 2)
    image = torch.randn(1, *shape)
    passes = len(tile_boxes(shape, PATCH, 0.5)) * len(mirror_axes(3))
    tile = image[:, None, :PATCH[0], :PATCH[1], :PATCH[2]].contiguous()
    if settings.channels_last:
        tile = tile.contiguous(memory_format=torch.channels_last_3d)
    print(f"CPU, {torch.get_num_threads()} threads, autocast {dtype}, channels-last {settings.channels_last}, "
          f"{settings.tiles_per_pass} input(s) per pass; volume {'x'.join(map(str, shape))}, {passes} passes")

    window, bare = [], []
    with torch.inference_mode():
        predict_logits(network, image, CLASSES, settings)
        for _ in range(args.repeats):
            start = time.perf_counter()
            predict_logits(network, image, CLASSES, settings)
            window.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                for _ in range(passes):
                    network(tile)
            bare.append(time.perf_counter() - start)
    w, b = statistics.median(window), statistics.median(bare)
    print("| sliding window s | bare passes s | per pass: window / bare | overhead share |")
    print("|---|---|---|---|")
    print(f"| {w:.2f} | {b:.2f} | {w / passes:.3f} / {b / passes:.3f} ({w / b:.2f}x) | {(w - b) / w:.0%} |")


if __name__ == "__main__":
    main()
