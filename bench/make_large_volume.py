"""Make a synthetic large-volume dataset in nnU-Net v2 raw format: brain-MRI-sized cases for issue 26's budget runs.

    python bench/make_large_volume.py --out /tmp/data/Dataset990_LargeVolume          # 6 cases, seed 0
    python bench/make_large_volume.py --out DIR --cases 10 --seed 3

Each case is 240 x 240 x 155 voxels at 1 mm (numpy order z, y, x = 155, 240, 240), two channels ("T1"-like and
"FLAIR"-like: smooth texture, a bias field, a bright skull ring and noise) and four nested blob-like labels, each
inside the one before: 1 "edema" (the largest, a smooth lumpy blob), 2 "core", 3 "enhancing", 4 "necrosis". The
classes differ in both channels with overlapping intensities, so a network has to use context and both channels.
The same seed gives the same files (numpy's PCG64 only; no scipy filters that change between versions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (155, 240, 240)
LABELS = {"background": 0, "edema": 1, "core": 2, "enhancing": 3, "necrosis": 4}
# Mean intensity of (brain, edema, core, enhancing, necrosis) in each channel; the noise sd is 0.35.
MEANS = {"T1": (1.0, 0.8, 0.9, 1.6, 0.5), "FLAIR": (1.0, 1.7, 1.3, 1.4, 1.1)}


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cutoff: float) -> np.ndarray:
    """A zero-mean, unit-sd random field without detail finer than ``cutoff`` cycles per voxel (FFT low-pass)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    spectrum = np.fft.rfftn(noise)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[:-1]], np.fft.rfftfreq(shape[-1]), indexing="ij")
    radius2 = sum(f ** 2 for f in frequencies)
    field = np.fft.irfftn(spectrum * np.exp(-radius2 / (2 * cutoff ** 2)), s=shape,
                           axes=tuple(range(len(shape)))).astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def blob(distance: np.ndarray, radius: float, lumps: np.ndarray, amount: float) -> np.ndarray:
    """Voxels inside a sphere of ``radius`` whose surface is pushed in and out by ``lumps`` (times ``amount``)."""
    return distance < radius * (1.0 + amount * lumps)


def make_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two channels (2, z, y, x) float32 and the label map (z, y, x) uint8 of one case."""
    grid = np.indices(SHAPE, dtype=np.float32)
    centre = np.array(SHAPE, dtype=np.float32) / 2
    head = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, (70, 100, 85))))
    brain = head < 1.0
    skull = (head >= 1.0) & (head < 1.12)
    tumour_centre = centre + rng.uniform(-0.35, 0.35, 3) * np.array([50, 60, 50])
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, tumour_centre)))
    del grid
    lumps = smooth_field(rng, SHAPE, 0.02)
    labels = np.zeros(SHAPE, np.uint8)
    radius = rng.uniform(22, 32)
    for value, share, amount in ((1, 1.0, 0.35), (2, 0.55, 0.25), (3, 0.4, 0.2), (4, 0.25, 0.3)):
        labels[blob(distance, radius * share, lumps, amount) & brain] = value
    texture = smooth_field(rng, SHAPE, 0.08)
    channels = []
    for name in ("T1", "FLAIR"):
        means = np.asarray(MEANS[name], np.float32)
        image = np.where(brain, means[0], 0.05).astype(np.float32)
        for value in range(1, 5):
            image[labels == value] = means[value]
        image[skull] = 2.2 if name == "T1" else 0.6
        bias = 1.0 + 0.15 * smooth_field(rng, SHAPE, 0.01)
        image = (image + 0.2 * texture * brain) * bias + 0.35 * rng.standard_normal(SHAPE).astype(np.float32)
        channels.append((100 * np.clip(image, 0, None)).astype(np.float32))
    return np.stack(channels), labels


def write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path), useCompression=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to create (DatasetXXX_Name)")
    parser.add_argument("--cases", type=int, default=6, help="training cases (6-10 in issue 26's runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (args.out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (args.out / "labelsTr").mkdir(parents=True, exist_ok=True)
    for index in range(args.cases):
        rng = np.random.default_rng([args.seed, index])
        channels, labels = make_case(rng)
        case = f"brain_{index:03d}"
        for channel, array in enumerate(channels):
            write(array, args.out / "imagesTr" / f"{case}_{channel:04d}.nii.gz")
        write(labels, args.out / "labelsTr" / f"{case}.nii.gz")
        print(f"{case}: labels {np.bincount(labels.ravel(), minlength=5).tolist()}", flush=True)
    dataset = {"channel_names": {"0": "T1", "1": "FLAIR"}, "labels": LABELS, "numTraining": args.cases,
               "file_ending": ".nii.gz", "name": args.out.name,
               "description": f"synthetic large volumes, bench/make_large_volume.py --cases {args.cases} "
                              f"--seed {args.seed}"}
    (args.out / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")


if __name__ == "__main__":
    main()
