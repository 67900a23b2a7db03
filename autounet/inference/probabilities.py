"""From network logits to probabilities and from probabilities to label maps.

Ordinary datasets: one output per label (background first), softmax, the most probable label wins.
Region datasets (dataset.json labels given as lists): one output per region, sigmoid, each region with
probability above 0.5 is written with its value from ``regions_class_order``, later regions over earlier ones.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from autounet.dataset.spec import DatasetSpec


CHUNK_VOXELS = 2 ** 22
"""Voxels per step of the in-place conversions: their temporary arrays stay K x 16 MiB."""


def _chunks(shape: tuple[int, ...]) -> Iterator[slice]:
    """Slices along the first spatial axis of a ``(K, Z, ...)`` array, each about :data:`CHUNK_VOXELS` voxels."""
    plane = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    step = max(1, CHUNK_VOXELS // max(plane, 1))
    for start in range(0, shape[1] if len(shape) > 1 else 1, step):
        yield slice(start, start + step)


def to_probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Probabilities ``(K, ...)`` from logits ``(K, ...)``: sigmoid per region, or softmax over the K labels."""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, dim=0)


def to_probabilities_(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """:func:`to_probabilities` in place, a slab at a time (no second ``K x N`` array); returns ``logits``.

    Example:
        >>> logits = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
        >>> torch.allclose(to_probabilities_(logits.clone(), False), to_probabilities(logits, False))
        True
    """
    if logits.ndim < 2:
        return logits.copy_(to_probabilities(logits, regions))
    for part in _chunks(tuple(logits.shape)):
        logits[:, part] = to_probabilities(logits[:, part], regions)
    return logits


def output_label_values(spec: DatasetSpec) -> list[int]:
    """The label value each output channel stands for: background then the foreground labels in order.

    Example:
        >>> spec = DatasetSpec("d", {0: "MRI"}, {"background": 0, "a": 1, "b": 2}, 1, ".nii.gz")
        >>> output_label_values(spec)
        [0, 1, 2]
    """
    if spec.has_regions:
        return list(spec.regions_class_order or [])
    return [0, *spec.foreground_labels]


def to_labels(probabilities: np.ndarray | torch.Tensor, spec: DatasetSpec) -> np.ndarray:
    """The label map ``(...)`` of probabilities ``(K, ...)`` (uint8, or int16 beyond 255 labels).

    Example:
        >>> spec = DatasetSpec("d", {0: "MRI"}, {"background": 0, "a": 1}, 1, ".nii.gz")
        >>> to_labels(np.array([[0.9, 0.2], [0.1, 0.8]]), spec).tolist()
        [0, 1]
    """
    probabilities = torch.as_tensor(probabilities)
    values = output_label_values(spec)
    dtype = np.uint8 if max(values, default=0) < 256 else np.int16
    if spec.has_regions:
        labels = torch.zeros(probabilities.shape[1:], dtype=torch.int32)
        for channel, value in enumerate(values):
            labels[probabilities[channel] > 0.5] = value
        return labels.numpy().astype(dtype)
    lookup = np.asarray(values, dtype=dtype)
    if probabilities.ndim < 2:
        return lookup[probabilities.argmax(dim=0).numpy()]
    labels = np.empty(probabilities.shape[1:], dtype=dtype)
    for part in _chunks(tuple(probabilities.shape)):  # argmax's int64 indices a slab at a time
        labels[part] = lookup[probabilities[:, part].argmax(dim=0).numpy()]
    return labels
