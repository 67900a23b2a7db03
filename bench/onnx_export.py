"""Benchmark: an ONNX export of a trained model against `autounet predict`, on real images.

Exports a trained configuration folder with ``autounet export-model --format onnx``, then per case: the maximum
absolute logit difference between onnxruntime and torch on one tile (float32 both), the label maps of
``autounet predict --precision float32`` (with TTA) and of the manifest's reference runner
(autounet/inference/onnx_reference.py: numpy, scipy, onnxruntime), their Dice per foreground label, and the
seconds each took per case.

A model to test: ``autounet run examples/Dataset004_Hippocampus --budget quick --folds 0`` (README), then
``--model <root>/results/Dataset004_Hippocampus/3d_fullres``.

Usage: python bench/onnx_export.py --model RESULTS/DatasetXXX/CONFIG [--images FOLDER] [--cases 5]
                                   [--work /tmp/autounet_bench_onnx] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, autounet_cmd, print_table, run_measured  # noqa: E402


def export(model: Path, work: Path) -> Path:
    """The ONNX folder of the configuration folder ``model`` (exported into a data root made of links)."""
    dataset, configuration = model.parent.name, model.name
    root = work / "root"
    linked = root / "results" / dataset / configuration
    if not linked.exists():
        linked.parent.mkdir(parents=True, exist_ok=True)
        linked.symlink_to(model.resolve())
    out = work / "onnx"
    if out.exists():
        shutil.rmtree(out)
    done = run_measured(autounet_cmd("export-model", dataset, "-c", configuration, "--format", "onnx", "-o",
                                     str(out), "--root", str(root)))
    if done.returncode != 0:
        sys.exit(f"export failed:\n{done.output[-3000:]}")
    return out


def tile_difference(model: Path, onnx_folder: Path, image: np.ndarray, spacing) -> float:
    """Max abs logit difference, onnxruntime vs torch (float32), on the first tile of a preprocessed case."""
    import onnxruntime
    import torch

    from autounet.inference.model_folder import load_network, load_trained_configuration
    from autounet.io.geometry import Geometry
    from autounet.preprocessing.pipeline import preprocess_case

    trained = load_trained_configuration(model)
    plan = trained.plan
    data, _, _ = preprocess_case(image, Geometry(tuple(spacing)), None, trained.plans, plan, "case")
    divisor = plan.network.total_downsampling()
    spatial = data.shape[2:] if plan.is_2d else data.shape[1:]
    tile = [min(p, max(d, s // d * d)) for p, d, s in zip(plan.patch_size, divisor, spatial)]
    x = data[:, data.shape[1] // 2] if plan.is_2d else data
    x = x[(slice(None), *[slice(0, t) for t in tile])]
    x = np.pad(x, [(0, 0)] + [(0, t - s) for t, s in zip(tile, x.shape[1:])])[None].astype(np.float32)
    network = load_network(trained.folds[0], plan, "cpu")
    with torch.no_grad():
        expected = network(torch.from_numpy(x)).numpy()
    manifest = json.loads((onnx_folder / "autounet_onnx.json").read_text())
    session = onnxruntime.InferenceSession(str(onnx_folder / manifest["graphs"][0]),
                                           providers=["CPUExecutionProvider"])
    got = session.run([manifest["output_name"]], {manifest["input_name"]: x})[0]
    return float(np.abs(got - expected).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained configuration folder")
    parser.add_argument("--images", type=Path, default=SHARED_DATA / "Dataset004_Hippocampus" / "imagesTs")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/autounet_bench_onnx"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import SimpleITK as sitk

    from autounet.inference.onnx_reference import segment
    from autounet.io import read_image

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    onnx_folder = export(args.model.resolve(), work)
    manifest = json.loads((onnx_folder / "autounet_onnx.json").read_text())
    suffix = manifest["channels"][0]["file_suffix"]
    cases = sorted(p.name[: -len(suffix)] for p in args.images.glob(f"*{suffix}"))[: args.cases]
    inputs = work / "inputs"
    if inputs.exists():
        shutil.rmtree(inputs)
    inputs.mkdir()
    for case in cases:
        for channel in manifest["channels"]:
            (inputs / f"{case}{channel['file_suffix']}").symlink_to(args.images / f"{case}{channel['file_suffix']}")
    predicted = work / "predicted"
    if predicted.exists():
        shutil.rmtree(predicted)
    start = time.perf_counter()
    done = run_measured(autounet_cmd("predict", "-i", str(inputs), "-o", str(predicted), "-m", str(args.model),
                                     "--precision", "float32", "--device", "cpu"))
    if done.returncode != 0:
        sys.exit(f"predict failed:\n{done.output[-3000:]}")
    predict_seconds = (time.perf_counter() - start) / len(cases)
    rows, seconds = [], []
    for case in cases:
        files = [inputs / f"{case}{c['file_suffix']}" for c in manifest["channels"]]
        image, geometry = read_image(files)
        start = time.perf_counter()
        labels = segment(onnx_folder, image, geometry.spacing, threads=args.threads)
        seconds.append(time.perf_counter() - start)
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(predicted / f"{case}{manifest['file_ending']}")))
        dice, voxels = [], []
        for value in (v for v in manifest["label_values"] if v != 0):
            a, b = labels == value, expected == value
            total = a.sum() + b.sum()
            dice.append(1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total))
            voxels.append(int(b.sum()))
        rows.append([case, tile_difference(args.model, onnx_folder, image, geometry.spacing), *dice, *voxels])
    foreground = [v for v in manifest["label_values"] if v]
    print_table(f"ONNX export of {args.model} vs autounet predict (float32, TTA), {len(cases)} cases",
                ["case", "max |logit diff| tile", *[f"Dice label {v}" for v in foreground],
                 *[f"voxels of {v} (predict)" for v in foreground]], rows)
    print(f"\nseconds per case: autounet predict {predict_seconds:.2f} (start-up included), reference runner "
          f"{np.mean(seconds):.2f} ({args.threads} onnxruntime threads)")


if __name__ == "__main__":
    main()
