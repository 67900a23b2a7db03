"""A cascade's previous-stage segmentation in a batch: sampled and augmented with the labels, then one-hot.

The previous stage's label map travels through patch sampling and the spatial augmentation as a second
label channel, so it is rotated, scaled and mirrored exactly like the image and the labels (label-wise
interpolation, ``-1`` beyond the image) and untouched by the intensity transforms. Only then is it split
off and appended to the image as one channel per predicted foreground value, the encoding inference uses
(:func:`autounet.preprocessing.pipeline.one_hot_labels`). Pure numpy, no torch.
"""

from __future__ import annotations

import numpy as np

from autounet.preprocessing.pipeline import one_hot_labels


def attach_previous_stage(images: np.ndarray, labels: np.ndarray,
                          values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(B, C, ...)`` and labels ``(B, 2, ...)`` (channel 1: the previous stage) to images
    ``(B, C + len(values), ...)`` with the previous stage one-hot encoded, and labels ``(B, 1, ...)``.

    Example:
        >>> images, labels = np.zeros((1, 1, 2, 2)), np.array([[[[0, 1], [2, 0]], [[1, 1], [2, -1]]]])
        >>> out_images, out_labels = attach_previous_stage(images, labels, [1, 2])
        >>> out_images.shape, out_labels.shape, out_images[0, 1].tolist()
        ((1, 3, 2, 2), (1, 1, 2, 2), [[1.0, 1.0], [0.0, 0.0]])
    """
    if labels.shape[1] != 2:
        raise ValueError(f"expected labels with the previous stage as channel 1, got shape {labels.shape}")
    previous = labels[:, 1]
    one_hot = np.stack([one_hot_labels(sample, values) for sample in previous])
    images = np.concatenate([images.astype(np.float32, copy=False), one_hot], axis=1)
    return images, np.ascontiguousarray(labels[:, :1])
