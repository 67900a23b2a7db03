"""Intensity normalisation schemes, one per channel, as the plans choose them.

- ``ct``: clip to the dataset's foreground 0.5 / 99.5 percentiles, then subtract the dataset's
  foreground mean and divide by its standard deviation (the same numbers for every image);
- ``zscore``: subtract the image's own mean and divide by its own standard deviation, computed over
  the nonzero mask when ``use_mask`` is set (voxels outside the mask are left at their value);
- ``rescale_to_0_1``: the image's own minimum to 0 and maximum to 1;
- ``rgb_to_0_1``: 8-bit colour values divided by 255 (clipped to [0, 1]);
- ``none``: unchanged (as float32).
"""

from __future__ import annotations

import numpy as np

from autounet.errors import UserError
from autounet.fingerprint.model import ChannelStats

SCHEMES = ("ct", "zscore", "none", "rescale_to_0_1", "rgb_to_0_1")
EPSILON = 1e-8


def normalize_channel(channel: np.ndarray, scheme: str, use_mask: bool = False, mask: np.ndarray | None = None,
                      stats: ChannelStats | None = None) -> np.ndarray:
    """One channel ``(z, y, x)`` normalised with ``scheme`` (see the module docstring); float32, a new array.

    Example:
        >>> normalize_channel(np.array([[[1.0, 3.0]]], np.float32), "zscore").tolist()
        [[[-1.0, 1.0]]]
    """
    channel = np.array(channel, dtype=np.float32, copy=True)
    if scheme == "none":
        return channel
    if scheme == "ct":
        if stats is None:
            raise UserError("CT normalisation needs the dataset's intensity statistics (plans.intensity_stats).")
        np.clip(channel, stats.percentile_00_5, stats.percentile_99_5, out=channel)
        channel -= np.float32(stats.mean)
        channel /= np.float32(max(stats.std, EPSILON))
        return channel
    if scheme == "zscore":
        if use_mask and mask is not None and mask.any():
            inside = channel[mask].astype(np.float64)
            channel[mask] = (inside - inside.mean()) / max(float(inside.std()), EPSILON)
            return channel
        mean, std = float(channel.mean(dtype=np.float64)), float(channel.std(dtype=np.float64))
        channel -= np.float32(mean)
        channel /= np.float32(max(std, EPSILON))
        return channel
    if scheme == "rescale_to_0_1":
        low, high = float(channel.min()), float(channel.max())
        channel -= np.float32(low)
        channel /= np.float32(max(high - low, EPSILON))
        return channel
    if scheme == "rgb_to_0_1":
        channel /= np.float32(255.0)
        return np.clip(channel, 0.0, 1.0, out=channel)
    raise UserError(f"unknown normalisation scheme '{scheme}' in the plans (known: {', '.join(SCHEMES)}).")


def normalize_image(image: np.ndarray, schemes: list[str], use_mask: list[bool], mask: np.ndarray | None,
                    stats: list[ChannelStats]) -> np.ndarray:
    """Every channel of ``image`` ``(c, z, y, x)`` normalised with its scheme; ``mask`` is the nonzero mask."""
    if len(schemes) != image.shape[0]:
        raise UserError(f"the plans give {len(schemes)} normalisation schemes but the image has "
                        f"{image.shape[0]} channels.")
    result = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        result[c] = normalize_channel(channel, schemes[c], use_mask[c] if c < len(use_mask) else False, mask,
                                      stats[c] if c < len(stats) else None)
    return result
