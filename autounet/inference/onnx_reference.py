"""A small reference runner of an exported ONNX model: numpy, scipy and onnxruntime only, no torch, no autounet.

It reads the manifest as plain JSON and follows what it states (see
:class:`autounet.inference.onnx_export.OnnxManifest`), so it shows that the manifest is enough to reproduce
``autounet predict`` elsewhere, and it is short enough to port. It favours clarity over speed and memory.

Example:
    >>> labels = segment(Path("hippocampus_onnx"), image, spacing=(1.0, 1.0, 1.0))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

MANIFEST_FILE = "autounet_onnx.json"
EPSILON = 1e-8


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))


def normalize(channel: np.ndarray, entry: dict, mask: np.ndarray) -> np.ndarray:
    """One channel normalised as its manifest entry says."""
    x = channel.astype(np.float32)
    scheme, stats = entry["normalization"], entry.get("statistics")
    if scheme == "ct":
        x = np.clip(x, stats["percentile_00_5"], stats["percentile_99_5"])
        return ((x - stats["mean"]) / max(stats["std"], EPSILON)).astype(np.float32)
    if scheme == "zscore":
        if entry["use_mask"] and mask.any():
            inside = x[mask].astype(np.float64)
            x[mask] = (inside - inside.mean()) / max(inside.std(), EPSILON)
            return x
        return ((x - x.mean(dtype=np.float64)) / max(x.std(dtype=np.float64), EPSILON)).astype(np.float32)
    if scheme == "rescale_to_0_1":
        return ((x - x.min()) / max(float(x.max() - x.min()), EPSILON)).astype(np.float32)
    if scheme == "rgb_to_0_1":
        return np.clip(x / 255.0, 0.0, 1.0).astype(np.float32)
    if scheme == "none":
        return x
    raise ValueError(f"unknown normalisation '{scheme}'")


def coarse_axis(source: Sequence[float], target: Sequence[float], threshold: float) -> int | None:
    """The single axis more than ``threshold`` times coarser than the finest (source spacing first), or None."""
    for spacing in (source, target):
        values = np.asarray(spacing, dtype=float)
        if values.max() / values.min() > threshold:
            coarse = np.flatnonzero(values == values.max())
            return int(coarse[0]) if coarse.size == 1 else None
    return None


def _zoom(volume: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    if tuple(volume.shape) == tuple(shape):
        return volume
    factors = [n / o for n, o in zip(shape, volume.shape)]
    result = ndimage.zoom(volume.astype(np.float32), factors, order=order, mode="nearest", grid_mode=True)
    return np.clip(result, volume.min(), volume.max()) if order > 1 else result


def resample(volume: np.ndarray, shape: Sequence[int], order: int, order_z: int, axis: int | None) -> np.ndarray:
    """A 3D volume resampled to ``shape``: all axes with ``order``, or in-plane with ``order`` then ``axis``
    alone with ``order_z``."""
    if axis is None:
        return _zoom(volume, shape, order)
    moved = np.moveaxis(volume, axis, 0)
    plane_shape = [s for a, s in enumerate(shape) if a != axis]
    moved = np.stack([_zoom(plane, plane_shape, order) for plane in moved])
    moved = _zoom(moved, [shape[axis], *plane_shape], order_z)
    return np.moveaxis(moved, 0, axis)


def gaussian(tile: Sequence[int], sigma_scale: float, kind: str = "centred") -> np.ndarray:
    weights = np.ones((), dtype=np.float64)
    for size in tile:
        sigma = size * sigma_scale
        centre = size // 2 if kind == "nnunet" else (size - 1) / 2.0
        distance = np.arange(size) - centre
        axis = np.exp(-0.5 * (distance / max(sigma, 1e-6)) ** 2)
        if kind == "nnunet":
            axis[np.abs(distance) > int(4.0 * sigma + 0.5)] = 0.0
        weights = np.multiply.outer(weights, axis)
    weights /= weights.max()
    return np.maximum(weights, weights[weights > 0].min()).astype(np.float32)


def starts(size: int, tile: int, step: float) -> list[int]:
    if size <= tile:
        return [0]
    count = math.ceil((size - tile) / max(tile * step, 1.0)) + 1
    return [int(round(i * (size - tile) / (count - 1))) for i in range(count)]


def sliding_window(session, data: np.ndarray, manifest: dict, tta: bool) -> np.ndarray:
    """Logits ``(K, Z, Y, X)`` of a preprocessed image ``(C, Z, Y, X)`` with one ONNX session."""
    tiling, is_2d = manifest["tiling"], manifest["is_2d"]
    spatial = data.shape[2:] if is_2d else data.shape[1:]
    whole = tiling.get("pad_to_patch", True)
    tile = [p if s >= p or whole else min(p, math.ceil(s / d) * d)
            for s, p, d in zip(spatial, tiling["patch_size"], tiling["divisor"])]
    full_tile = [1, *tile] if is_2d else tile
    pads = [((max(t - s, 0)) // 2, max(t - s, 0) - max(t - s, 0) // 2) for s, t in zip(data.shape[1:], full_tile)]
    image = np.pad(data, [(0, 0), *pads])
    weight = gaussian(tile, tiling["gaussian_sigma_scale"], tiling.get("importance", "centred"))
    if is_2d:
        weight = weight[None]
    logits = np.zeros((manifest["num_outputs"], *image.shape[1:]), dtype=np.float32)
    weights = np.zeros(image.shape[1:], dtype=np.float32)
    flips = tiling["mirror_axes"] if tta else [[]]
    corners = itertools.product(*[starts(s, t, tiling["step"]) for s, t in zip(image.shape[1:], full_tile)])
    for corner in corners:
        box = tuple(slice(c, c + t) for c, t in zip(corner, full_tile))
        tile_data = image[(slice(None), *box)]
        x = tile_data[:, 0] if is_2d else tile_data
        batch = np.stack([np.flip(x, [1 + a for a in axes]) if axes else x for axes in flips])
        out = session.run([manifest["output_name"]], {manifest["input_name"]: np.ascontiguousarray(batch)})[0]
        merged = np.mean([np.flip(o, [1 + a for a in axes]) if axes else o for o, axes in zip(out, flips)], axis=0)
        if is_2d:
            merged = merged[:, None]
        logits[(slice(None), *box)] += merged * weight
        weights[box] += weight
    logits /= weights
    crop = tuple(slice(before, before + size) for (before, _), size in zip(pads, data.shape[1:]))
    return logits[(slice(None), *crop)]


def activate(logits: np.ndarray, activation: str) -> np.ndarray:
    """Probabilities of logits ``(K, ...)``: sigmoid per channel, or softmax over the channels."""
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    exponentials = np.exp(logits - logits.max(axis=0))
    return exponentials / exponentials.sum(axis=0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask, np.ones((3,) * mask.ndim, bool))
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def postprocess(labels: np.ndarray, choice: dict, foreground: Sequence[int]) -> np.ndarray:
    groups = ([list(foreground)] if choice["all_foreground_as_one"] else []) + list(choice["largest_component_for"])
    for values in groups:
        mask = np.isin(labels, values)
        if mask.any():
            labels[mask & ~largest_component(mask)] = 0
    return labels


def segment(folder: Path, image: np.ndarray, spacing: Sequence[float], tta: bool | None = None,
            threads: int = 1) -> np.ndarray:
    """The label map ``(Z, Y, X)`` of ``image`` ``(C, Z, Y, X)`` with voxel ``spacing`` (z, y, x), as the
    exported model in ``folder`` predicts it; ``tta`` defaults to the manifest's choice."""
    import onnxruntime

    folder = Path(folder)
    manifest = read_manifest(folder)
    tta = manifest["tiling"]["mirror"] if tta is None else tta
    image = np.asarray(image, dtype=np.float32)
    nonzero = (image != 0).any(axis=0)
    if manifest["crop_to_nonzero"] and nonzero.any():
        where = np.argwhere(nonzero)
        box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(0), where.max(0)))
    else:
        box = tuple(slice(0, s) for s in image.shape[1:])
    cropped, mask = image[(slice(None), *box)], nonzero[box]
    data = np.stack([normalize(cropped[c["index"]], c, mask) for c in manifest["channels"]])
    spacing = [float(s) for s in spacing]
    target = [s if t is None else float(t) for s, t in zip(spacing, manifest["target_spacing"])]
    shape = [max(1, int(round(n * s / t))) for n, s, t in zip(data.shape[1:], spacing, target)]
    resampling = manifest["resampling"]
    axis = coarse_axis(spacing, target, resampling["anisotropy_threshold"])
    data = np.stack([resample(c, shape, resampling["order_data"], resampling["order_data_z"], axis) for c in data])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    of_logits = manifest.get("fold_average", "probabilities") == "logits"
    total = None
    for graph in manifest["graphs"]:
        session = onnxruntime.InferenceSession(str(folder / graph), options, providers=["CPUExecutionProvider"])
        logits = sliding_window(session, data, manifest, tta)
        fold = logits if of_logits else activate(logits, manifest["activation"])
        total = fold if total is None else total + fold
    total /= len(manifest["graphs"])
    as_logits = of_logits and manifest.get("restored_as", "probabilities") == "logits"
    outputs = activate(total, manifest["activation"]) if of_logits and not as_logits else total
    back_axis = coarse_axis(target, spacing, resampling["anisotropy_threshold"])
    restored = np.zeros((outputs.shape[0], *image.shape[1:]), dtype=np.float32)
    restored[0] = 1.0
    for k in range(outputs.shape[0]):
        restored[(k, *box)] = resample(outputs[k], cropped.shape[1:], resampling["order_seg"],
                                       resampling["order_seg_z"], back_axis)
    if as_logits:
        inside = (slice(None), *box)
        restored[inside] = activate(restored[inside], manifest["activation"])
    values = np.asarray(manifest["label_values"])
    if manifest["activation"] == "sigmoid":
        restored[0][~np.pad(np.ones(cropped.shape[1:], bool), [(b.start, s - b.stop) for b, s in
                                                                 zip(box, image.shape[1:])])] = 0.0
        labels = np.zeros(image.shape[1:], dtype=np.int32)
        for channel, value in enumerate(values):
            labels[restored[channel] > 0.5] = value
    else:
        labels = values[np.argmax(restored, axis=0)]
    foreground = [int(v) for v in values if v != 0]
    return postprocess(labels.astype(np.int32), manifest["postprocessing"], foreground)
