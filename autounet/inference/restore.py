"""Predictions on the preprocessed grid brought back to the original image, through preprocessing's own
restore functions (so training and inference share one resampling)."""

from __future__ import annotations

import numpy as np
import torch

from autounet.dataset.spec import DatasetSpec
from autounet.inference.probabilities import output_label_values, to_labels, to_probabilities_
from autounet.planning.plans import ConfigurationPlan
from autounet.preprocessing.store import CaseProperties


def was_resampled(properties: CaseProperties) -> bool:
    """True when preprocessing changed the cropped image's shape (restoring then needs interpolation)."""
    return list(properties.shape_after_resample) != list(properties.shape_after_crop)


def _outside_crop(properties: CaseProperties) -> np.ndarray:
    outside = np.ones(properties.original_shape, dtype=bool)
    outside[tuple(slice(lo, hi) for lo, hi in properties.crop_bbox)] = False
    return outside


def restore_all_probabilities(outputs: torch.Tensor, properties: CaseProperties, plan: ConfigurationPlan,
                              spec: DatasetSpec, logits: bool = False) -> np.ndarray:
    """Probabilities ``(K, Z, Y, X)`` in the original image; outside the crop box only background is probable
    (for region datasets, no region is). ``outputs`` are probabilities, or with ``logits`` the logits, which are
    resampled as they are and turned into probabilities on the original grid (as nnU-Net restores)."""
    from autounet.preprocessing.pipeline import crop_box, restore_probabilities

    restored = restore_probabilities(outputs.numpy(), properties, plan)
    if logits:
        inside = restored[(slice(None), *crop_box(properties))]
        to_probabilities_(torch.from_numpy(inside), spec.has_regions)
    if spec.has_regions:
        restored[0][_outside_crop(properties)] = 0.0
    return restored


def restore_labels_of(outputs: torch.Tensor, properties: CaseProperties, plan: ConfigurationPlan,
                      spec: DatasetSpec, logits: bool = False) -> np.ndarray:
    """The label map ``(Z, Y, X)`` in the original image: exactly the labels of the restored probabilities, or with
    ``logits`` of the restored logits (``outputs`` are then logits: softmax keeps the largest one largest, and a
    sigmoid is above 0.5 where its logit is above 0).

    Without resampling, restoring is un-cropping, which commutes with choosing labels, so only the small label
    map is restored. With resampling, the probabilities are restored one output at a time into the crop box and
    the labels chosen as they come (a running argmax), so at most two crop-sized float arrays exist instead of K;
    outside the crop box every voxel is background, as the full restore gives.
    """
    from autounet.preprocessing.pipeline import crop_box, restore_channel_in_crop, restore_labels

    if not was_resampled(properties):
        probabilities = to_probabilities_(outputs.clone(), spec.has_regions) if logits else outputs
        return restore_labels(to_labels(probabilities, spec), properties, plan)
    values = output_label_values(spec)
    dtype = np.uint8 if max(values, default=0) < 256 else np.int16
    array = outputs.numpy()
    threshold = 0.0 if logits else 0.5
    labels = np.zeros(properties.original_shape, dtype=dtype)
    inside = labels[crop_box(properties)]  # a view: the crop box's labels
    best = None
    for channel, value in enumerate(values):
        restored = restore_channel_in_crop(array[channel], properties, plan)
        if spec.has_regions:
            inside[restored > threshold] = value
        elif best is None:
            best = restored
        else:
            better = restored > best
            inside[better] = value
            np.maximum(best, restored, out=best)
        del restored
    return labels
