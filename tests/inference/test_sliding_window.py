"""Sliding-window inference: tiling, Gaussian weights, padding and mirroring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.inference.sliding_window import (WindowSettings, gaussian_importance, mirror_axes, predict_logits,
                                               tile_boxes, tile_shape, tile_starts)
from autounet.network import NetworkConfig, build_network


class ChannelSum(torch.nn.Module):
    """Identity on the spatial grid that also adds the channels into a second output (checks channel order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.sum(1, keepdim=True)], 1)


def _settings(patch, divisor=None, **kwargs) -> WindowSettings:
    return WindowSettings(tuple(patch), tuple(divisor or [1] * len(patch)), **kwargs)


@pytest.mark.parametrize("shape", [(13, 17, 11), (3, 5, 7), (8, 8, 8), (20, 6, 30)])
@pytest.mark.parametrize("mirror", [False, True])
def test_identity_network_gives_back_the_input_3d(shape, mirror):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, *shape)).astype(np.float32)
    settings = _settings((8, 8, 8), (4, 4, 4), mirror=mirror, tiles_per_pass=3)
    out = predict_logits(ChannelSum(), image, 3, settings).numpy()
    assert out.shape == (3, *shape)
    np.testing.assert_allclose(out[:2], image, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[2], image.sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 19, 23), (1, 5, 6), (2, 16, 8)])
def test_identity_network_gives_back_the_input_2d_slice_by_slice(shape):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, *shape)).astype(np.float32)
    calls = []

    class Record(torch.nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return x

    out = predict_logits(Record(), image, 1, _settings((8, 8), (4, 4), mirror=True)).numpy()
    np.testing.assert_allclose(out, image, rtol=1e-5, atol=1e-5)
    assert all(len(c) == 4 for c in calls)  # the network saw (B, C, Y, X) images


def test_gaussian_weights_symmetric_positive_and_peaked():
    for tile in [(8, 8, 8), (5, 12, 7), (64, 48)]:
        weights = gaussian_importance(tile)
        assert weights.shape == tile
        assert (weights > 0).all()
        assert weights.max() == pytest.approx(1.0)
        for axis in range(len(tile)):
            np.testing.assert_allclose(weights, np.flip(weights, axis), rtol=1e-6)
        centre = tuple(s // 2 for s in tile)
        assert weights[centre] > weights[(0,) * len(tile)]


def test_tiles_cover_the_image_with_the_requested_overlap():
    assert tile_starts(40, 40, 0.5) == [0]
    assert tile_starts(41, 40, 0.5) == [0, 1]
    assert tile_starts(100, 40, 0.5) == [0, 20, 40, 60]
    assert tile_starts(5, 1, 0.5) == [0, 1, 2, 3, 4]
    covered = np.zeros((50, 33, 70), int)
    for box in tile_boxes(covered.shape, (16, 16, 16), 0.5):
        covered[box] += 1
    assert covered.min() >= 1


def test_small_images_are_padded_to_the_whole_patch_unless_told_otherwise():
    settings = _settings((40, 56, 40), (8, 8, 8))
    assert tile_shape((35, 50, 41), settings) == (40, 56, 40)
    assert tile_shape((10, 50, 100), settings) == (40, 56, 40)
    assert tile_shape((3, 20, 9), _settings((32, 32), (8, 8))) == (1, 32, 32)
    # without padding to the patch, only to the network's multiple
    rounded = _settings((40, 56, 40), (8, 8, 8), pad_to_patch=False)
    assert tile_shape((35, 50, 41), rounded) == (40, 56, 40)
    assert tile_shape((10, 50, 100), rounded) == (16, 56, 40)
    assert tile_shape((3, 20, 9), _settings((32, 32), (8, 8), pad_to_patch=False)) == (1, 24, 16)


def test_mirror_axes_cover_every_combination():
    assert mirror_axes(2) == [(), (2,), (3,), (2, 3)]
    assert len(mirror_axes(3)) == 8


def test_mirroring_of_a_mirror_symmetric_input_is_consistent():
    """With an input symmetric under every flip, mirrored TTA equals the plain prediction mirrored-averaged, and
    the result is itself symmetric."""
    torch.manual_seed(0)
    config = NetworkConfig(3, 1, 2, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]])
    network = build_network(config).eval()
    rng = np.random.default_rng(2)
    half = rng.normal(size=(1, 4, 5, 6)).astype(np.float32)
    image = np.concatenate([half, half[:, ::-1]], 1)
    image = np.concatenate([image, image[:, :, ::-1]], 2)
    image = np.concatenate([image, image[:, :, :, ::-1]], 3)
    settings = _settings((8, 8, 8), (2, 2, 2))
    plain = predict_logits(network, image, 2, settings).numpy()
    mirrored = predict_logits(network, image, 2, WindowSettings(**{**settings.__dict__, "mirror": True})).numpy()
    flips = [np.flip(plain, axes) for axes in [(), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)]]
    np.testing.assert_allclose(mirrored, np.mean(flips, 0), rtol=1e-4, atol=1e-5)
    for axis in (1, 2, 3):
        np.testing.assert_allclose(mirrored, np.flip(mirrored, axis), rtol=1e-4, atol=1e-5)


def test_batching_tiles_does_not_change_the_result():
    torch.manual_seed(1)
    config = NetworkConfig(3, 1, 3, [4, 8], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]])
    network = build_network(config).eval()
    image = np.random.default_rng(3).normal(size=(1, 13, 21, 10)).astype(np.float32)
    one = predict_logits(network, image, 3, _settings((8, 8, 8), (2, 2, 2), mirror=True, tiles_per_pass=1))
    many = predict_logits(network, image, 3, _settings((8, 8, 8), (2, 2, 2), mirror=True, tiles_per_pass=16))
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_memory_order_gives_the_same_logits(dims):
    """A network converted to channels-last and fed channels-last tiles sums the logits of the default order."""
    from autounet.inference.sliding_window import to_memory_format

    torch.manual_seed(5)
    config = NetworkConfig(dims, 2, 3, [4, 8], [[3] * dims] * 2, [[1] * dims, [2] * dims])
    network = build_network(config).eval()
    image = np.random.default_rng(6).normal(size=(2, 6, 13, 10)).astype(np.float32)
    patch, divisor = (8,) * dims, (2,) * dims
    first = predict_logits(network, image, 3, _settings(patch, divisor, mirror=True, tiles_per_pass=4))
    settings = _settings(patch, divisor, mirror=True, tiles_per_pass=4, channels_last=True)
    converted = to_memory_format(network, settings)
    conv = next(m for m in converted.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    order = torch.channels_last_3d if dims == 3 else torch.channels_last
    assert conv.weight.is_contiguous(memory_format=order)
    tile = torch.zeros(1, 2, *patch).contiguous(memory_format=order)
    with torch.inference_mode():
        assert converted(tile).is_contiguous()  # the heads keep the logits channels-first
    torch.testing.assert_close(first, predict_logits(converted, image, 3, settings), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims, channels_last", [(2, False), (3, False), (3, True)])
def test_the_last_head_applied_once_to_the_mirrorings_mean_gives_the_same_logits(dims, channels_last):
    """A 1x1 head is linear and commutes with flips: averaging its inputs over the 8 (or 4) mirrorings and applying
    it once gives the logits of applying it to every mirroring, with one head call per pass of tiles."""
    from autounet.inference.sliding_window import mirrored_head, to_memory_format

    torch.manual_seed(7)
    config = NetworkConfig(dims, 1, 6, [3, 6], [[3] * dims] * 2, [[1] * dims, [2] * dims])
    network = build_network(config).eval()
    image = np.random.default_rng(8).normal(size=(1, 5, 12, 11)).astype(np.float32)
    patch, divisor = (8,) * dims, (2,) * dims
    each = _settings(patch, divisor, mirror=True, tiles_per_pass=32, channels_last=channels_last)
    once = _settings(patch, divisor, mirror=True, tiles_per_pass=32, channels_last=channels_last,
                     head_after_mirroring=True)
    network = to_memory_format(network, each)
    head = mirrored_head(network)
    assert head is network.heads[-1]
    calls = []
    head.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    expected = predict_logits(network, image, 6, each)
    inputs_each = sum(calls)  # every tile of every mirroring went through the head
    calls.clear()
    got = predict_logits(network, image, 6, once)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert sum(calls) * 2 ** dims == inputs_each  # once per tile
    assert network.heads[-1] is head  # put back after the window


def test_networks_without_a_1x1_last_head_are_mirrored_as_they_are():
    from autounet.inference.sliding_window import mirrored_head

    assert mirrored_head(ChannelSum()) is None
    image = np.random.default_rng(9).normal(size=(2, 6, 7, 5)).astype(np.float32)
    settings = _settings((4, 4, 4), (2, 2, 2), mirror=True, head_after_mirroring=True)
    out = predict_logits(ChannelSum(), image, 3, settings).numpy()
    np.testing.assert_allclose(out[:2], image, rtol=1e-5, atol=1e-5)


def test_low_precision_logits_are_summed_in_float32_exactly_as_their_float32_copies():
    """Mirrorings are flipped and added in the network's type into float32 sums: the same numbers as converting
    each pass to float32 first (the conversion is exact)."""
    from autounet.inference.sliding_window import _forward

    class Bfloat16Network(torch.nn.Module):
        def forward(self, x):
            return (x * 1.37 + x.flip(2)[:, :1] * 0.11).to(torch.bfloat16)

    tiles = torch.randn(2, 3, 6, 5, 4, generator=torch.Generator().manual_seed(3))
    settings = _settings((6, 5, 4), (1, 1, 1), mirror=True, tiles_per_pass=3)
    network = Bfloat16Network()
    expected = torch.zeros(2, 3, 6, 5, 4)
    for axes in [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]:
        expected += network(tiles.flip(axes)).float().flip(axes) if axes else network(tiles).float()
    expected /= 8
    result = _forward(network, tiles, settings)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


def test_channels_last_on_the_cpu_for_3d_networks_with_few_first_stage_features_only():
    from autounet.inference.predictor import CHANNELS_LAST_BELOW_FEATURES, uses_channels_last

    cpu, below = torch.device("cpu"), CHANNELS_LAST_BELOW_FEATURES
    assert uses_channels_last(cpu, (80, 160, 160), [below - 1, 2 * below])
    assert not uses_channels_last(cpu, (80, 160, 160), [below, 2 * below])
    assert not uses_channels_last(cpu, (512, 512), [4, 8])
    assert not uses_channels_last(torch.device("cuda"), (80, 160, 160), [4, 8])


def test_a_2d_network_over_a_volume_batches_tiles_across_slices_with_the_same_result(monkeypatch):
    """Passes of 2D tiles that span several slices give the logits of one tile per pass."""
    import autounet.inference.sliding_window as sliding_window

    torch.manual_seed(2)
    config = NetworkConfig(2, 2, 3, [4, 8], [[3, 3]] * 2, [[1, 1], [2, 2]])
    network = build_network(config).eval()
    image = np.random.default_rng(4).normal(size=(2, 5, 13, 11)).astype(np.float32)
    passes: list[torch.Tensor] = []
    forward = sliding_window._forward
    monkeypatch.setattr(sliding_window, "_forward",
                        lambda net, tiles, settings: passes.append(tiles) or forward(net, tiles, settings))
    one = predict_logits(network, image, 3, _settings((8, 8), (2, 2), mirror=True, tiles_per_pass=1))
    assert len(passes) == 5 * 3 * 2  # 5 slices x 3 x 2 tiles, each alone
    passes.clear()
    many = predict_logits(network, image, 3, _settings((8, 8), (2, 2), mirror=True, tiles_per_pass=32))
    assert [len(p) for p in passes] == [8, 8, 8, 6]  # 32 inputs = 8 tiles x 4 mirrorings; 30 tiles, 4 passes
    assert passes[0][:, :, 0].shape == (8, 2, 8, 8)
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-5)


def test_cpu_passes_group_small_2d_tiles_and_keep_3d_patches_alone():
    from autounet.inference.predictor import CPU_VOXELS_PER_PASS, MAX_INPUTS_PER_PASS, tiles_per_pass

    cpu = torch.device("cpu")
    assert tiles_per_pass(cpu, (40, 56, 40), [32]) == 1
    assert tiles_per_pass(cpu, (128, 128), [32]) == CPU_VOXELS_PER_PASS // (128 * 128) == 8
    assert tiles_per_pass(cpu, (16, 16), [32]) == MAX_INPUTS_PER_PASS
    assert tiles_per_pass(cpu, (512, 512), [32]) == 1


def test_out_of_device_memory_falls_back_to_cpu_sums_and_smaller_passes(monkeypatch):
    """A device that cannot hold the sums, nor more than one input per pass, still gives the same logits."""
    import autounet.inference.sliding_window as sliding_window

    real_zeros = torch.zeros

    def zeros_without_device_memory(*args, device=None, **kwargs):
        if device is not None and torch.device(device).type != "cpu":
            raise torch.OutOfMemoryError("no room")
        return real_zeros(*args, **kwargs)

    monkeypatch.setattr(sliding_window.torch, "zeros", zeros_without_device_memory)
    accumulator = sliding_window._Accumulator(2, (3, 4, 5), torch.device("meta"))
    assert accumulator.device.type == "cpu" and accumulator.logits.shape == (2, 3, 4, 5)
    monkeypatch.setattr(sliding_window.torch, "zeros", real_zeros)

    passes = []

    class SmallDevice(torch.nn.Module):
        def forward(self, x):
            passes.append(x.shape[0])
            if x.shape[0] > 2:
                raise torch.OutOfMemoryError("batch too large")
            return x

    image = np.random.default_rng(4).normal(size=(1, 10, 12, 9)).astype(np.float32)
    out = predict_logits(SmallDevice(), image, 1, _settings((8, 8, 8), (2, 2, 2), mirror=True, tiles_per_pass=16))
    np.testing.assert_allclose(out.numpy(), image, rtol=1e-5, atol=1e-5)
    assert max(passes) == 16 and passes[-1] <= 2


class TileCornerConstant(torch.nn.Module):
    """Outputs, over the whole tile, the input value at the tile's first corner: each tile says where it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :1, :1, :1].expand_as(x).clone()


def _hand_gaussian(offset: int, tile: int = 8) -> float:
    """nnU-Net's tile weight along one axis: centre (tile - 1) / 2, sigma tile / 8 (the peak's scale cancels)."""
    return float(np.exp(-0.5 * ((offset - (tile - 1) / 2) / (tile / 8)) ** 2))


# voxel (z, y, x) -> the (y, x) starts of the tiles covering it. A 12 x 20 plane with 8-voxel tiles at step 0.5
# has tiles starting at y in {0, 4} and x in {0, 4, 8, 12}; z has one tile.
COVERING_TILES = {
    (3, 5, 6): [(0, 0), (0, 4), (4, 0), (4, 4)],
    (2, 7, 8): [(0, 4), (0, 8), (4, 4), (4, 8)],
    (6, 4, 12): [(0, 8), (0, 12), (4, 8), (4, 12)],
    (0, 2, 3): [(0, 0)],
    (7, 11, 19): [(4, 12)],
}


@pytest.mark.parametrize("mirror", [False, True])
def test_disagreeing_tiles_are_blended_with_gaussian_weights(mirror):
    # The image's value is 100 * y + x, so a tile starting at (y0, x0) outputs 100 * y0 + x0 everywhere (with
    # mirroring: the mean over its flipped corners, 100 * (y0 + 3.5) + x0 + 3.5). Where tiles overlap they
    # disagree, and the blend is sum(w * tile value) / sum(w) with w the product of per-axis Gaussians.
    z, y, x = np.indices((8, 12, 20))
    image = (100.0 * y + x)[None].astype(np.float32)
    out = predict_logits(TileCornerConstant(), image, 1, _settings((8, 8, 8), mirror=mirror)).numpy()[0]
    shift = 353.5 if mirror else 0.0
    for (vz, vy, vx), starts in COVERING_TILES.items():
        weights = [_hand_gaussian(vy - y0) * _hand_gaussian(vx - x0) for y0, x0 in starts]
        values = [100 * y0 + x0 + shift for y0, x0 in starts]
        expected = sum(w * v for w, v in zip(weights, values)) / sum(weights)
        assert out[vz, vy, vx] == pytest.approx(expected, rel=1e-5), (vz, vy, vx)
    # The blend is far from a plain mean of the covering tiles, so the check sees wrong weights.
    assert out[3, 5, 6] != pytest.approx(np.mean([0, 4, 400, 404]) + shift, rel=0.1)
