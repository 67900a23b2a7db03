"""What sliding-window prediction costs beyond the network's forward passes, on the CPU.

The network is the one ``bench/big_volume.py`` predicts with (15 classes, 4-32 features, patch 80x160x160; random
weights), the image a preprocessed volume of ``--tiles-y`` x ``--tiles-x`` tiles at step 0.5 with mirroring TTA,
the settings those ``autounet predict`` chooses on this machine (precision, memory order, inputs per pass). In one
process, alternating: ``predict_logits`` over the volume, and the same number of bare forward passes of one tile.
The difference is the cost of flipping, summing and weighting the logits (on the big volume, 1800 passes). The
window runs both ways: with the mirrorings' logits summed (``head_after_mirroring`` off) and with the last head's
4 input maps summed and the head applied once (on, as ``autounet predict`` chooses for this network); the largest
difference between their logits is printed.

    python bench/window_overhead.py                  # 2 x 2 tiles, 3 repeats
    python bench/window_overhead.py --precision float32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autounet.inference.predictor import resolve_precision, tiles_per_pass, uses_channels_last  # noqa: E402
from autounet.inference.sliding_window import (WindowSettings, mirror_axes, predict_logits,  # noqa: E402
                                               tile_boxes, to_memory_format)
from autounet.network import build_network  # noqa: E402
from bench.channels_last import NETWORKS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles-y", type=int, default=2)
    parser.add_argument("--tiles-x", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="as autounet predict's --precision (default: auto)")
    args = parser.parse_args()

    cpu = torch.device("cpu")
    dtype = resolve_precision(args.precision, cpu)
    config, patch = NETWORKS["big_volume"]
    features = config.features_per_stage
    settings = WindowSettings(patch, tuple(config.total_downsampling()), 0.5, True,
                              tiles_per_pass(cpu, patch, features), dtype,
                              channels_last=uses_channels_last(cpu, patch, features))
    torch.manual_seed(0)
    network = to_memory_format(build_network(config).eval(), settings)
    shape = (patch[0], patch[1] * (args.tiles_y + 1) // 2, patch[2] * (args.tiles_x + 1) // 2)
    image = torch.randn(1, *shape)
    passes = len(tile_boxes(shape, patch, 0.5)) * len(mirror_axes(3))
    tile = image[:, None, :patch[0], :patch[1], :patch[2]].contiguous()
    if settings.channels_last:
        tile = tile.contiguous(memory_format=torch.channels_last_3d)
    print(f"CPU, {torch.get_num_threads()} threads, autocast {dtype}, channels-last {settings.channels_last}, "
          f"{settings.tiles_per_pass} input(s) per pass; volume {'x'.join(map(str, shape))}, {passes} passes")

    ways = {"logits summed": replace(settings, head_after_mirroring=False),
            "head after mirroring": replace(settings, head_after_mirroring=True)}
    window: dict[str, list[float]] = {name: [] for name in ways}
    bare: list[float] = []
    with torch.inference_mode():
        logits = {name: predict_logits(network, image, config.num_classes, way) for name, way in ways.items()}
        for _ in range(args.repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                predict_logits(network, image, config.num_classes, way)
                window[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                for _ in range(passes):
                    network(tile)
            bare.append(time.perf_counter() - start)
    b = statistics.median(bare)
    print("| mirrorings | sliding window s | bare passes s | per pass: window / bare | overhead share |")
    print("|---|---|---|---|---|")
    for name in ways:
        w = statistics.median(window[name])
        print(f"| {name} | {w:.2f} | {b:.2f} | {w / passes:.3f} / {b / passes:.3f} ({w / b:.2f}x) | "
              f"{(w - b) / w:.0%} |")
    first, second = logits.values()
    print(f"largest logit difference between the two: {float((first - second).abs().max()):.2e} "
          f"(logits up to {float(first.abs().max()):.2f})")


if __name__ == "__main__":
    main()
