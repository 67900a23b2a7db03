"""Per-channel intensity normalisation schemes, chosen from the channel names in dataset.json."""

from __future__ import annotations

from autounet.planning.constants import NONZERO_MASK_MAX_RELATIVE_SIZE

SCHEMES_BY_CHANNEL_NAME = {"ct": "ct", "nonorm": "none", "none": "none", "rescale_to_0_1": "rescale_to_0_1",
                           "rgb_to_0_1": "rgb_to_0_1"}
"""Channel names (lower case) that select a scheme; every other name gets ``zscore``."""


def normalization_scheme(channel_name: str) -> str:
    """``ct`` for CT (clip to the dataset's 0.5-99.5 percentiles, z-score with its statistics), ``none``,
    ``rescale_to_0_1`` or ``rgb_to_0_1`` when named so, else ``zscore`` (per image).

    Example:
        >>> normalization_scheme("CT"), normalization_scheme("T2")
        ('ct', 'zscore')
    """
    return SCHEMES_BY_CHANNEL_NAME.get(channel_name.strip().lower(), "zscore")


def use_mask_for_norm(scheme: str, median_relative_size_after_crop: float) -> bool:
    """Whether z-score statistics come from the nonzero region only.

    Only for ``zscore``, and only when cropping to the nonzero region removed
    more than a quarter of the median image (a large zero background, e.g.
    skull-stripped brains), so the background does not dominate the statistics.
    """
    return scheme == "zscore" and median_relative_size_after_crop < NONZERO_MASK_MAX_RELATIVE_SIZE
