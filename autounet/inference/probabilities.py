"""From network logits to probabilities and from probabilities to label maps.

Ordinary datasets: one output per label (background first), softmax, the most probable label wins.
Region datasets (dataset.json labels given as lists): one output per region, sigmoid, each region with
probability above 0.5 is written with its value from ``regions_class_order``, later regions over earlier ones.
"""

from __future__ import annotations

import numpy as np
import torch

from autounet.dataset.spec import DatasetSpec


def to_probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Probabilities ``(K, ...)`` from logits ``(K, ...)``: sigmoid per region, or softmax over the K labels."""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, dim=0)


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
    index = probabilities.argmax(dim=0).numpy()
    lookup = np.asarray(values, dtype=dtype)
    return lookup[index]
