"""Normalisation schemes."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import UserError
from autounet.fingerprint.model import ChannelStats
from autounet.preprocessing.normalize import normalize_channel, normalize_image

STATS = ChannelStats(mean=40.0, std=20.0, median=40.0, min=-1000.0, max=3000.0, percentile_00_5=-100.0,
                     percentile_99_5=200.0)


def test_ct_clips_to_dataset_percentiles_and_standardises_with_dataset_statistics():
    channel = np.array([[[-1000.0, -100.0, 0.0, 40.0, 200.0, 3000.0]]], np.float32)
    out = normalize_channel(channel, "ct", stats=STATS)
    expected = (np.clip(channel, -100, 200) - 40.0) / 20.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.min() == pytest.approx(-7.0) and out.max() == pytest.approx(8.0)


def test_ct_without_statistics_is_a_user_error():
    with pytest.raises(UserError):
        normalize_channel(np.zeros((1, 2, 2), np.float32), "ct")


def test_zscore_uses_the_image_itself():
    rng = np.random.default_rng(0)
    channel = rng.normal(100, 15, (8, 9, 10)).astype(np.float32)
    out = normalize_channel(channel, "zscore")
    assert abs(out.mean()) < 1e-4 and out.std() == pytest.approx(1.0, abs=1e-4)


def test_zscore_with_mask_standardises_inside_and_leaves_outside():
    rng = np.random.default_rng(1)
    channel = np.zeros((8, 9, 10), np.float32)
    mask = np.zeros(channel.shape, bool)
    mask[2:6, 2:7, 3:8] = True
    channel[mask] = rng.normal(500, 50, mask.sum())
    out = normalize_channel(channel, "zscore", use_mask=True, mask=mask)
    assert abs(out[mask].mean()) < 1e-4 and out[mask].std() == pytest.approx(1.0, abs=1e-4)
    assert np.all(out[~mask] == 0)
    unmasked = normalize_channel(channel, "zscore", use_mask=False, mask=mask)
    assert not np.allclose(unmasked[~mask], 0)


def test_rescale_and_rgb_and_none():
    channel = np.array([[[10.0, 20.0, 30.0]]], np.float32)
    np.testing.assert_allclose(normalize_channel(channel, "rescale_to_0_1"), [[[0.0, 0.5, 1.0]]])
    np.testing.assert_allclose(normalize_channel(np.array([[[0.0, 51.0, 255.0]]]), "rgb_to_0_1"),
                               [[[0.0, 0.2, 1.0]]])
    assert np.array_equal(normalize_channel(channel, "none"), channel)


def test_per_channel_schemes_and_errors():
    image = np.stack([np.full((2, 3, 4), 255.0), np.arange(24.0).reshape(2, 3, 4)]).astype(np.float32)
    out = normalize_image(image, ["rgb_to_0_1", "zscore"], [False, False], None, [STATS, STATS])
    assert np.all(out[0] == 1.0) and abs(out[1].mean()) < 1e-5
    with pytest.raises(UserError, match="unknown normalisation"):
        normalize_image(image, ["rgb_to_0_1", "whiten"], [False, False], None, [STATS, STATS])
    with pytest.raises(UserError, match="channels"):
        normalize_image(image, ["zscore"], [False], None, [STATS])
