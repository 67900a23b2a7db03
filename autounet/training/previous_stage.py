"""A cascade's previous-stage segmentation in a batch: sampled and augmented with the labels, then one-hot.

The previous stage's label map travels through patch sampling and the spatial augmentation as a second
label channel, so it is rotated, scaled and mirrored exactly like the image and the labels (label-wise
interpolation, ``-1`` beyond the image) and untouched by the intensity transforms. Only then is it split
off and appended to the image as one channel per predicted foreground value, the encoding inference uses
(:func:`autounet.preprocessing.pipeline.one_hot_labels`). Pure numpy/scipy, no torch.

Training batches may also perturb it, as nnU-Net's recipe does, so the cascade learns not to copy the first
stage blindly: per sample, each channel may be dilated, eroded, opened or closed with a ball of random radius,
and small connected components may be removed.
"""

from __future__ import annotations

import numpy as np

from autounet.preprocessing.pipeline import one_hot_labels

P_MORPHOLOGY = 0.4
"""Chance per sample that its previous-stage channels go through a random binary operation each."""
MORPHOLOGY_RADIUS = (1, 8)
"""Range of the ball's radius (voxels, inclusive) of the binary operation."""
P_REMOVE_COMPONENTS = 0.2
"""Chance per sample that some connected components of each previous-stage channel are removed."""
MAX_REMOVED_FRACTION = 0.15
"""Only components smaller than this fraction of the patch may be removed."""


def _ball(radius: int, ndim: int) -> np.ndarray:
    grid = np.ogrid[tuple(slice(-radius, radius + 1) for _ in range(ndim))]
    return sum(axis.astype(float) ** 2 for axis in grid) <= radius ** 2


def perturb_one_hot(one_hot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One sample's previous-stage channels ``(P, *spatial)`` (0/1, at most one 1 per voxel) randomly
    degraded (see the module's text); the channels stay 0/1 and mutually exclusive.

    Example:
        >>> ball = np.zeros((1, 9, 9, 9), np.float32); ball[0, 2:7, 2:7, 2:7] = 1
        >>> out = perturb_one_hot(ball, np.random.default_rng(0))
        >>> set(np.unique(out)) <= {0.0, 1.0}
        True
    """
    from scipy import ndimage

    out = one_hot.copy()
    channels = out.shape[0]
    if rng.random() < P_MORPHOLOGY:
        operations = (ndimage.binary_dilation, ndimage.binary_erosion, ndimage.binary_opening,
                      ndimage.binary_closing)
        for channel in rng.permutation(channels):
            operation = operations[rng.integers(len(operations))]
            ball = _ball(int(rng.integers(MORPHOLOGY_RADIUS[0], MORPHOLOGY_RADIUS[1] + 1)), out.ndim - 1)
            changed = operation(out[channel] > 0, structure=ball)
            out[:, changed] = 0  # a voxel taken by this channel leaves the others
            out[channel] = changed
    if rng.random() < P_REMOVE_COMPONENTS:
        limit = MAX_REMOVED_FRACTION * out[0].size
        for channel in range(channels):
            components, count = ndimage.label(out[channel] > 0)
            if count == 0:
                continue
            sizes = np.bincount(components.ravel())[1:]
            small = np.flatnonzero(sizes < limit) + 1
            if small.size:
                removed = rng.choice(small, int(rng.integers(small.size + 1)), replace=False)
                out[channel][np.isin(components, removed)] = 0
    return out


def attach_previous_stage(images: np.ndarray, labels: np.ndarray, values: list[int],
                          rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(B, C, ...)`` and labels ``(B, 2, ...)`` (channel 1: the previous stage) to images
    ``(B, C + len(values), ...)`` with the previous stage one-hot encoded, and labels ``(B, 1, ...)``.

    With ``rng`` each sample's previous-stage channels are perturbed (:func:`perturb_one_hot`).

    Example:
        >>> images, labels = np.zeros((1, 1, 2, 2)), np.array([[[[0, 1], [2, 0]], [[1, 1], [2, -1]]]])
        >>> out_images, out_labels = attach_previous_stage(images, labels, [1, 2])
        >>> out_images.shape, out_labels.shape, out_images[0, 1].tolist()
        ((1, 3, 2, 2), (1, 1, 2, 2), [[1.0, 1.0], [0.0, 0.0]])
    """
    if labels.shape[1] != 2:
        raise ValueError(f"expected labels with the previous stage as channel 1, got shape {labels.shape}")
    one_hot = np.stack([one_hot_labels(sample, values) for sample in labels[:, 1]])
    if rng is not None:
        one_hot = np.stack([perturb_one_hot(sample, rng) for sample in one_hot])
    images = np.concatenate([images.astype(np.float32, copy=False), one_hot], axis=1)
    return images, np.ascontiguousarray(labels[:, :1])
