"""Sliding-window inference: a network applied tile by tile to a whole preprocessed image.

Tiles overlap (``step`` is the fraction of the tile between neighbouring starts); each tile's logits are
weighted by a Gaussian that trusts the centre of a tile more than its borders, summed, and divided by the summed
weights. With mirroring test-time augmentation every tile is also predicted flipped along each combination of
spatial axes and the unflipped logits are averaged. Images smaller than a tile are zero-padded and the result is
cropped back.

2D configurations see a ``(C, Z, Y, X)`` volume as Z separate images: tiles are one slice thick and the network
gets ``(B, C, Y, X)``; one forward pass may hold tiles of several slices.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from autounet.utils.progress import track_within

GAUSSIAN_SIGMA_SCALE = 1.0 / 8.0


@dataclass(frozen=True)
class WindowSettings:
    """How an image is tiled and predicted.

    ``patch_size`` has 2 entries for 2D networks and 3 for 3D ones; ``divisor`` is the network's total
    downsampling per axis (tiles smaller than the patch are rounded up to a multiple of it).
    ``tiles_per_pass`` bounds how many network inputs (tiles times mirrorings) go through one forward pass.
    ``compute_dtype`` other than float32 runs the network under autocast in that type (logits are summed in
    float32 either way). ``channels_last`` passes the inputs in channels-last memory order (the network must have
    been converted with :func:`to_memory_format`).
    """

    patch_size: tuple[int, ...]
    divisor: tuple[int, ...]
    step: float = 0.5
    mirror: bool = True
    tiles_per_pass: int = 1
    compute_dtype: torch.dtype = torch.float32
    pad_to_patch: bool = True
    """Tiles are always the full patch (smaller images zero-padded to it), as training pads small cases and as
    nnU-Net predicts; False rounds a small image only up to the downsampling (see :func:`tile_shape`)."""
    importance: str = "centred"
    """Tile weights: ``centred`` (:func:`gaussian_importance`) or ``nnunet`` (:func:`nnunet_importance`, for models
    installed from nnU-Net, which blend overlapping tiles with it)."""
    channels_last: bool = False
    head_after_mirroring: bool = False
    """With mirroring, the mirrored passes' last features are averaged and the network's last output head (a 1x1
    convolution, linear) is applied once to their mean: the same logits up to rounding, and fewer maps to flip
    and add when the head has fewer inputs than outputs (see :func:`mirrored_head`)."""

    @property
    def is_2d(self) -> bool:
        return len(self.patch_size) == 2


def gaussian_importance(tile: Sequence[int], sigma_scale: float = GAUSSIAN_SIGMA_SCALE) -> np.ndarray:
    """Weights of a tile's voxels: a Gaussian centred on the tile, sigma = tile * ``sigma_scale`` per axis.

    The maximum is 1 and every weight is positive, so a voxel covered by any tile gets a defined average.

    Example:
        >>> w = gaussian_importance((5, 4))
        >>> float(w.max()), bool((w > 0).all()), np.allclose(w, w[::-1, ::-1])
        (1.0, True, True)
    """
    weights = np.ones((), dtype=np.float64)
    for size in tile:
        centre = (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-6)
        axis = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2)
        weights = np.multiply.outer(weights, axis)
    weights /= weights.max()
    smallest_positive = weights[weights > 0].min()
    return np.maximum(weights, smallest_positive).astype(np.float32)


def nnunet_importance(tile: Sequence[int], sigma_scale: float = GAUSSIAN_SIGMA_SCALE) -> np.ndarray:
    """Tile weights as nnU-Net v2 computes them: per axis ``exp(-0.5 (d / sigma)^2)`` of the distance ``d`` to voxel
    ``size // 2`` (not the tile's exact middle), zero beyond ``int(4 sigma + 0.5)`` voxels (a truncated Gaussian
    filter of a single 1), the product over axes scaled to a maximum of 1, zeros raised to the smallest positive
    weight.

    Example:
        >>> w = nnunet_importance((4,))
        >>> int(w.argmax()), bool(w[0] < w[3])
        (2, True)
    """
    weights = np.ones((), dtype=np.float64)
    for size in tile:
        sigma = size * sigma_scale
        distance = np.arange(size) - size // 2
        axis = np.exp(-0.5 * (distance / max(sigma, 1e-6)) ** 2)
        axis[np.abs(distance) > int(4.0 * sigma + 0.5)] = 0.0
        weights = np.multiply.outer(weights, axis)
    weights /= weights.max()
    return np.maximum(weights, weights[weights > 0].min()).astype(np.float32)


IMPORTANCE = {"centred": gaussian_importance, "nnunet": nnunet_importance}


def tile_starts(size: int, tile: int, step: float) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` voxels with neighbours ``step * tile`` apart.

    The first tile starts at 0 and the last ends at ``size``; the starts between are spread evenly.

    Example:
        >>> tile_starts(100, 40, 0.5)
        [0, 20, 40, 60]
    """
    if size <= tile:
        return [0]
    count = math.ceil((size - tile) / max(tile * step, 1.0)) + 1
    spacing = (size - tile) / (count - 1)
    return [int(round(i * spacing)) for i in range(count)]


def tile_shape(image_shape: Sequence[int], settings: WindowSettings) -> tuple[int, int, int]:
    """The (z, y, x) extent of the tiles for an image of spatial ``image_shape`` (z, y, x).

    Along an axis where the image is at least the patch, the tile is the patch; where the image is smaller, it is
    the patch too (the image zero-padded to it, as training pads small cases), or, without
    ``settings.pad_to_patch``, the image rounded up to a multiple of the network's downsampling (less compute, but
    the network then sees less padding than it was trained with: lower Dice in bench/tile_padding.py).
    """
    spatial = tuple(image_shape[1:]) if settings.is_2d else tuple(image_shape)
    extent = tuple(patch if size >= patch or settings.pad_to_patch else min(patch, math.ceil(size / div) * div)
                   for size, patch, div in zip(spatial, settings.patch_size, settings.divisor))
    return (1, *extent) if settings.is_2d else extent  # type: ignore[return-value]


def tile_boxes(image_shape: Sequence[int], tile: Sequence[int], step: float) -> list[tuple[slice, slice, slice]]:
    """Every tile's (z, y, x) slices over an image at least as large as ``tile``."""
    starts = [tile_starts(size, extent, step) for size, extent in zip(image_shape, tile)]
    return [tuple(slice(s, s + t) for s, t in zip(corner, tile))  # type: ignore[misc]
            for corner in itertools.product(*starts)]


def centred_padding(shape: Sequence[int], minimum: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero-padding per axis that grows ``shape`` to at least ``minimum``, centred."""
    pads = []
    for size, least in zip(shape, minimum):
        missing = max(least - size, 0)
        pads.append((missing // 2, missing - missing // 2))
    return pads


def mirror_axes(spatial_dims: int) -> list[tuple[int, ...]]:
    """Every combination of spatial axes of a (B, C, *spatial) tensor to flip, starting with no flip."""
    axes = range(2, 2 + spatial_dims)
    return [combo for n in range(spatial_dims + 1) for combo in itertools.combinations(axes, n)]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Accumulator:
    """Weighted sums of tile logits and of the weights, on the device when it has room, else in CPU memory; with
    ``scratch``, the logits are a memory-mapped file in that folder (see :mod:`autounet.inference.memory`)."""

    def __init__(self, channels: int, shape: Sequence[int], device: torch.device, scratch: Path | None = None):
        self.device = device
        if scratch is not None:
            self.device = torch.device("cpu")
            handle, name = tempfile.mkstemp(prefix="logits-", suffix=".f32", dir=scratch)
            os.close(handle)
            mapped = np.memmap(name, dtype=np.float32, mode="w+", shape=(channels, *shape))
            self.logits = torch.from_numpy(mapped)
            self.weights = torch.zeros(tuple(shape), dtype=torch.float32)
            return
        try:
            self.logits = torch.zeros((channels, *shape), dtype=torch.float32, device=device)
            self.weights = torch.zeros(tuple(shape), dtype=torch.float32, device=device)
        except torch.OutOfMemoryError:
            self.device = torch.device("cpu")
            self.logits = torch.zeros((channels, *shape), dtype=torch.float32)
            self.weights = torch.zeros(tuple(shape), dtype=torch.float32)

    def add(self, box: tuple[slice, ...], logits: torch.Tensor, importance: torch.Tensor) -> None:
        logits = logits.to(self.device, non_blocking=True)
        self.logits[(slice(None), *box)].addcmul_(logits, importance.to(self.device))
        self.weights[box] += importance.to(self.device)

    def average(self) -> torch.Tensor:
        return self.logits.div_(self.weights)


def channels_last_format(dims: int) -> torch.memory_format:
    """The channels-last memory format of ``dims``-dimensional (2 or 3) images."""
    return torch.channels_last_3d if dims == 3 else torch.channels_last


def to_memory_format(network: torch.nn.Module, settings: WindowSettings) -> torch.nn.Module:
    """``network`` (in place) in the memory order ``settings`` asks for; unchanged when it asks for none.

    In channels-last order the output heads (``network.heads``, 1x1 convolutions) stay channels-first and get
    their input converted, so the logits come out channels-first like the sums they are added to."""
    if settings.channels_last:
        network.to(memory_format=channels_last_format(len(settings.patch_size)))
        for head in getattr(network, "heads", ()):
            head.to(memory_format=torch.contiguous_format)
            head.register_forward_pre_hook(_channels_first_input)
    return network


def _channels_first_input(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    # A head's input has the network's few first-stage features; its output has one map per class. Converting
    # the input is cheaper than summing channels-last logits into channels-first sums, which reads memory
    # one class apart per voxel (bench/window_overhead.py).
    return tuple(x.contiguous() for x in inputs)


def mirrored_head(network: torch.nn.Module) -> torch.nn.Module | None:
    """The network's last output head when it is a 1x1 convolution (``network.heads[-1]``), else None.

    Such a head is linear and commutes with flipping, so averaging its outputs over the mirrorings equals applying
    it to the average of its inputs."""
    heads = getattr(network, "heads", None)
    head = heads[-1] if heads else None
    if isinstance(head, (torch.nn.Conv2d, torch.nn.Conv3d)) and all(k == 1 for k in head.kernel_size):
        return head
    return None


@contextlib.contextmanager
def _last_head_removed(network: torch.nn.Module) -> Iterator[None]:
    """``network`` giving its last head's inputs instead of its logits, for the duration."""
    head = network.heads[-1]
    network.heads[-1] = torch.nn.Identity()
    try:
        yield
    finally:
        network.heads[-1] = head


def _forward(network: torch.nn.Module, tiles: torch.Tensor, settings: WindowSettings) -> torch.Tensor:
    """Logits of a batch of (B, C, z, y, x) tiles, averaged over the mirrorings when they are on.

    Each pass's outputs are flipped back and added as they come (in mirroring order, so the sums are the same
    as adding whole mirrorings), so only one pass's outputs exist beside the sums. With
    ``settings.head_after_mirroring`` the outputs summed are the last head's inputs, and the head is applied to
    their mean."""
    inputs = tiles[:, :, 0] if settings.is_2d else tiles
    dims = inputs.ndim - 2
    flips = mirror_axes(dims) if settings.mirror else [()]
    head = mirrored_head(network) if settings.head_after_mirroring and len(flips) > 1 else None
    batch = inputs.shape[0]
    stacked = torch.cat([inputs.flip(axes) if axes else inputs for axes in flips])
    if settings.channels_last:
        stacked = stacked.contiguous(memory_format=channels_last_format(dims))
    chunk = max(settings.tiles_per_pass, 1)
    mixed = settings.compute_dtype != torch.float32
    total = None
    with torch.autocast(stacked.device.type, dtype=settings.compute_dtype, enabled=mixed), \
            (_last_head_removed(network) if head is not None else contextlib.nullcontext()):
        for start in range(0, stacked.shape[0], chunk):
            outputs = network(stacked[start:start + chunk])
            if total is None:
                # in the outputs' memory order: features come out channels-last when the network runs so
                total = torch.empty((batch, *outputs.shape[1:]), dtype=torch.float32, device=outputs.device)
                if head is not None and settings.channels_last:
                    total = total.contiguous(memory_format=channels_last_format(dims))
            for offset in range(outputs.shape[0]):
                index = start + offset
                axes, sample = flips[index // batch], index % batch
                _add_flipped(total[sample:sample + 1], outputs[offset:offset + 1], axes, index < batch)
            del outputs
    if len(flips) > 1:
        total /= len(flips)
    if head is not None:
        total = head(total)
    return total.unsqueeze(2) if settings.is_2d else total


def _add_flipped(total: torch.Tensor, part: torch.Tensor, axes: tuple[int, ...], first: bool) -> None:
    """``total`` (float32) set to, or increased by, ``part`` (any floating type) flipped back along ``axes``.

    The flip is made in ``part``'s own type, which is half the memory of a float32 copy under bfloat16 autocast;
    the sum converts as it adds (bench/window_overhead.py)."""
    part = part.flip(axes) if axes else part
    if first:
        total.copy_(part)
    else:
        total.add_(part)


def _forward_fitting(network: torch.nn.Module, tiles: torch.Tensor,
                     settings: WindowSettings) -> tuple[torch.Tensor, WindowSettings]:
    """:func:`_forward`, halving the inputs per pass while the device runs out of memory."""
    while True:
        try:
            return _forward(network, tiles, settings), settings
        except torch.OutOfMemoryError:
            if settings.tiles_per_pass <= 1:
                raise
            settings = replace(settings, tiles_per_pass=settings.tiles_per_pass // 2)
            if tiles.is_cuda:
                torch.cuda.empty_cache()


def predict_logits(network: torch.nn.Module, data: np.ndarray | torch.Tensor, num_outputs: int,
                   settings: WindowSettings, device: torch.device | str = "cpu",
                   scratch: Path | None = None) -> torch.Tensor:
    """Sliding-window logits ``(num_outputs, Z, Y, X)`` (float32, CPU) of a preprocessed image ``(C, Z, Y, X)``.

    ``network`` must already be on ``device`` and in eval mode; it maps ``(B, C, *tile)`` to
    ``(B, num_outputs, *tile)``. With ``scratch`` (a folder), the logits are summed in a memory-mapped file
    there and the result is a view of it (tiles go slab by slab along Z, so the pages in use stay few).

    Example:
        >>> settings = WindowSettings(patch_size=(8, 8, 8), divisor=(4, 4, 4))
        >>> out = predict_logits(torch.nn.Identity(), np.ones((1, 5, 9, 12), np.float32), 1, settings)
        >>> tuple(out.shape), bool(torch.allclose(out, torch.ones(1)))
        ((1, 5, 9, 12), True)
    """
    device = torch.device(device)
    image = torch.as_tensor(np.asarray(data, dtype=np.float32) if not torch.is_tensor(data) else data,
                            dtype=torch.float32)
    spatial = tuple(image.shape[1:])
    tile = tile_shape(spatial, settings)
    pads = centred_padding(spatial, tile)
    if any(before or after for before, after in pads):
        flat = [amount for pair in reversed(pads) for amount in pair]
        image = torch.nn.functional.pad(image, flat)
    padded_shape = tuple(image.shape[1:])
    importance = torch.from_numpy(IMPORTANCE[settings.importance](tile[1:] if settings.is_2d else tile))
    if settings.is_2d:
        importance = importance.unsqueeze(0)
    importance = importance.to(device)
    accumulator = _Accumulator(num_outputs, padded_shape, device, scratch)
    boxes = tile_boxes(padded_shape, tile, settings.step)
    mirrorings = 2 ** len(settings.patch_size) if settings.mirror else 1
    tiles_per_batch = max(1, settings.tiles_per_pass // mirrorings)
    groups = list(_batches(boxes, tiles_per_batch))
    with torch.inference_mode():
        for group in track_within(groups, "tiles", total=len(groups)):
            tiles = torch.stack([image[(slice(None), *box)] for box in group]).to(device, non_blocking=True)
            logits, settings = _forward_fitting(network, tiles, settings)
            for box, tile_logits in zip(group, logits):
                accumulator.add(box, tile_logits, importance)
        result = accumulator.average()
    crop = tuple(slice(before, before + size) for (before, _), size in zip(pads, spatial))
    cropped = result[(slice(None), *crop)].to("cpu")
    return cropped if scratch is not None else cropped.contiguous()
