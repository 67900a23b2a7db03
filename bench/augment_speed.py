"""Seconds to augment one batch: batchgenerators in a data worker (one CPU thread) against the same recipe
batched on the training device (``--augment-on gpu``), on patch and batch sizes of nnU-Net-like plans.

    python bench/augment_speed.py                  # on CUDA when there is one, else on the CPU
    python bench/augment_speed.py --device cpu --batches 5

Both paths augment the same read patches (random images with a blob of labels, read at the sampling patch
size) with the same recipe, alternating batch by batch, in this process. The table gives the median seconds per
batch of each and the ratio; on the CPU the device path runs with one thread, as a worker would, so the ratio
says what moving the work out of the workers costs or saves per batch; on a GPU it says how little of a
training step the augmentation takes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from autounet.training.augment import augment_batch, build_augmentation, sampling_patch_size
from autounet.training.device_augment import DeviceAugmentation
from autounet.training.settings import AugmentationSettings

CASES = {  # name: (patch, batch, channels), sizes of the plans in docs/planning.md
    "Hippocampus 3d_fullres": ([40, 56, 40], 9, 1),
    "Hippocampus 2d": ([56, 40], 366, 1),
    "ISBI 2d": ([512, 512], 12, 1),
    "PH2 2d (RGB)": ([512, 640], 10, 3),
    "CT 3d_fullres": ([128, 128, 128], 2, 1),
    "CT anisotropic 3d": ([24, 256, 256], 2, 1),
}


def read_patches(patch: list[int], batch: int, channels: int, rng: np.random.Generator):
    size = sampling_patch_size(patch)
    images = rng.normal(size=(batch, channels, *size)).astype(np.float32)
    grid = np.indices(size)
    centre = np.array(size)[:, None] / 2
    inside = np.sqrt(((grid.reshape(len(size), -1) - centre) ** 2).sum(0)) < min(size) / 4
    labels = np.repeat(inside.reshape(size)[None, None].astype(np.int16), batch, axis=0)
    return images, labels


def time_call(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--batches", type=int, default=10, help="batches timed per path and case")
    parser.add_argument("--cases", default="", help="parts of case names, comma-separated (default: all)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    torch.set_num_threads(1)  # a data worker's share; on CUDA the device does the work
    settings = AugmentationSettings()
    wanted = [w.strip().lower() for w in args.cases.split(",") if w.strip()]
    rows = []
    for name, (patch, batch, channels) in CASES.items():
        if wanted and not any(w in name.lower() for w in wanted):
            continue
        rng = np.random.default_rng(0)
        images, labels = read_patches(patch, batch, channels, rng)
        transform, on_device = build_augmentation(patch, settings), DeviceAugmentation(patch, settings)
        cpu_seconds, device_seconds = [], []
        for seed in range(args.batches + 1):  # the first of each is a warm-up
            cpu = time_call(lambda: augment_batch(transform, images, labels, seed))

            def device_batch():
                out = on_device(torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.int64))
                                .to(device), seed)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                return out

            moved = time_call(device_batch)
            if seed:
                cpu_seconds.append(cpu)
                device_seconds.append(moved)
        cpu_median, device_median = statistics.median(cpu_seconds), statistics.median(device_seconds)
        rows.append((name, patch, batch, channels, cpu_median, device_median))
        print(f"{name}: batchgenerators {cpu_median:.3f} s, device path ({device.type}) {device_median:.3f} s",
              flush=True)
    print(f"\n| case | patch | batch x channels | batchgenerators, 1 CPU thread (s/batch) | device path on "
          f"{device.type} (s/batch) | device / batchgenerators |")
    print("|---|---|---|---|---|---|")
    for name, patch, batch, channels, cpu, moved in rows:
        print(f"| {name} | {'x'.join(map(str, patch))} | {batch} x {channels} | {cpu:.3f} | {moved:.3f} | "
              f"{moved / cpu:.2f} |")


if __name__ == "__main__":
    main()
