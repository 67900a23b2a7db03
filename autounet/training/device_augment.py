"""The augmentation recipe as batched tensor operations on the training device (``--augment-on gpu``).

The data workers then only crop patches of :func:`~autounet.training.augment.sampling_patch_size` from the
memory-mapped cache; this module does the rest on the batch where the network is: elastic deformation (off in the
default recipe), rotation and scaling through one ``grid_sample`` per batch (which also cuts the centre patch), Gaussian noise, Gaussian blur, multiplicative
brightness, contrast, simulated low resolution, gamma (inverted and not) and mirroring, in that order, with the
probabilities and ranges of :class:`~autounet.training.settings.AugmentationSettings`, the same recipe the CPU path
(:mod:`autounet.training.augment`, batchgenerators) applies.

Every random choice is drawn first, on the CPU, from the batch's seed (:func:`draw_augmentation`), so a batch is a
pure function of its key on either path, and the draws can be checked without a device. Where the two paths differ
(an implementation choice, not the recipe): images are resampled linearly (batchgenerators: cubic), labels by
nearest neighbour (batchgenerators: linear per label then rounded), and the low-resolution simulation upsamples
linearly (batchgenerators: cubic). tests/training/test_device_augment.py compares the two paths' batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from autounet.training.augment import max_rotation, sampling_patch_size, slice_by_slice
from autounet.training.settings import AugmentationSettings


@dataclass
class AugmentationDraw:
    """The random choices for one batch of ``B`` samples with ``C`` channels and ``D`` spatial axes.

    Each transform's "off" value is its identity (a factor of 1, a sigma of 0), so every field is defined for
    every sample.
    """

    spatial: np.ndarray
    """(B, D, D): maps an output voxel's offset from the patch centre to its offset in the read patch."""
    spatial_on: np.ndarray
    """(B,) bool: whether the sample is deformed, rotated or scaled (otherwise its centre is cut out unchanged)."""
    deformation_alpha: np.ndarray
    """(B,) magnitude of the elastic deformation, 0 for none."""
    deformation_sigma: np.ndarray
    """(B,) smoothness (voxels) of the elastic deformation."""
    noise_std: np.ndarray
    """(B,) standard deviation of the added noise (batchgenerators' "variance" is used as one)."""
    blur_sigma: np.ndarray
    """(B, C) Gaussian blur sigma in voxels, 0 for no blur."""
    brightness: np.ndarray
    """(B, C) multiplier."""
    contrast: np.ndarray
    """(B, C) contrast factor about the channel's mean (the range is kept)."""
    low_resolution: np.ndarray
    """(B, C) zoom of the simulated low resolution, 1 for none."""
    gamma_inverted: np.ndarray
    """(B, C) gamma applied to the inverted image, 1 for none."""
    gamma: np.ndarray
    """(B, C) gamma, 1 for none."""
    mirror: np.ndarray
    """(B, D) bool: flip along each spatial axis."""
    noise_seed: int
    """Seeds the device generator of the noise itself."""
    deformation_seed: int = 0
    """Seeds the device generator of the deformation fields."""


def _factor(rng: np.random.Generator, value_range: tuple[float, float]) -> float:
    """A multiplier from ``value_range`` that is below 1 half the time when the range allows (batchgenerators'
    rule for contrast, gamma and scale), so shrinking and growing are equally likely whatever the range's
    asymmetry."""
    low, high = value_range
    if low < 1 and rng.random() < 0.5:
        return float(rng.uniform(low, min(high, 1.0)))
    return float(rng.uniform(max(low, 1.0), high))


def _rotation(angles: list[float]) -> np.ndarray:
    """The rotation matrix for one angle (2 axes) or three angles about the axes in turn (3 axes)."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        plane = [a for a in range(3) if a != axis]
        turn = np.eye(3)
        turn[np.ix_(plane, plane)] = [[c, -s], [s, c]]
        matrix = turn @ matrix
    return matrix


def draw_augmentation(rng: np.random.Generator, batch: int, channels: int, patch_size: list[int],
                      settings: AugmentationSettings) -> AugmentationDraw:
    """Draw one batch's augmentation, with each transform's probability per sample (and per channel where the
    recipe has one).

    Example:
        >>> draw = draw_augmentation(np.random.default_rng(0), 4, 1, [32, 32], AugmentationSettings())
        >>> draw.spatial.shape, draw.brightness.shape, draw.mirror.shape
        ((4, 2, 2), (4, 1), (4, 2))
    """
    s = settings
    dims = len(patch_size)
    by_slice = slice_by_slice(patch_size, s)
    plane = dims - 1 if by_slice else dims  # axes the spatial transform moves (the last ones)
    angle = max_rotation(list(patch_size[dims - plane:]), s)
    spatial, spatial_on = np.tile(np.eye(dims), (batch, 1, 1)), np.zeros(batch, bool)
    alpha, sigma = np.zeros(batch), np.ones(batch)
    for b in range(batch):
        if s.p_deformation > 0 and rng.random() < s.p_deformation:  # no draw at all when off: batches unchanged
            alpha[b], sigma[b] = rng.uniform(*s.deformation_alpha), rng.uniform(*s.deformation_sigma)
        rotate, scale = rng.random() < s.p_rotation, rng.random() < s.p_scale
        matrix = np.eye(plane)
        if rotate:
            matrix = _rotation([float(a) for a in rng.uniform(-angle, angle, 1 if plane == 2 else 3)])
        if scale:
            matrix = _factor(rng, s.scale_range) * matrix
        spatial[b, dims - plane:, dims - plane:] = matrix
        spatial_on[b] = rotate or scale or alpha[b] > 0

    def per_sample(p: float) -> np.ndarray:
        return rng.random(batch) < p

    def per_channel(p_sample: float, p_channel: float, draw, off: float) -> np.ndarray:
        values = np.full((batch, channels), off)
        for b in np.flatnonzero(per_sample(p_sample)):
            for c in range(channels):
                if rng.random() < p_channel:
                    values[b, c] = draw()
        return values

    noise_std = np.where(per_sample(s.p_noise), rng.uniform(*s.noise_variance, batch), 0.0)
    blur = per_channel(s.p_blur, s.p_blur_per_channel, lambda: rng.uniform(*s.blur_sigma), 0.0)
    brightness = per_channel(s.p_brightness, 1.0, lambda: rng.uniform(*s.brightness_range), 1.0)
    contrast = per_channel(s.p_contrast, 1.0, lambda: _factor(rng, s.contrast_range), 1.0)
    low_resolution = per_channel(s.p_low_resolution, s.p_low_resolution_per_channel,
                                 lambda: rng.uniform(*s.low_resolution_zoom), 1.0)
    gamma_inverted = per_channel(s.p_gamma_inverted, 1.0, lambda: _factor(rng, s.gamma_range), 1.0)
    gamma = per_channel(s.p_gamma, 1.0, lambda: _factor(rng, s.gamma_range), 1.0)
    mirror = rng.random((batch, dims)) < 0.5 if s.mirror else np.zeros((batch, dims), bool)
    noise_seed = int(rng.integers(2**63))
    deformation_seed = int(rng.integers(2**63)) if (alpha > 0).any() else 0
    return AugmentationDraw(spatial, spatial_on, alpha, sigma, noise_seed=noise_seed, blur_sigma=blur,
                            noise_std=noise_std, brightness=brightness, contrast=contrast,
                            low_resolution=low_resolution, gamma_inverted=gamma_inverted, gamma=gamma, mirror=mirror,
                            deformation_seed=deformation_seed)


def _expand(values: torch.Tensor, dims: int) -> torch.Tensor:
    return values.reshape(*values.shape, *([1] * dims))


def _centre_crop(tensor: torch.Tensor, size: list[int]) -> torch.Tensor:
    starts = [(n - p) // 2 for n, p in zip(tensor.shape[2:], size)]
    return tensor[(slice(None), slice(None), *(slice(a, a + p) for a, p in zip(starts, size)))]


def _smoothed_noise(size: list[int], sigma: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform noise in [-1, 1] of ``size``, Gaussian-smoothed with zero padding (scipy's ``mode="constant"``)."""
    field = torch.rand(size, generator=generator, device=device) * 2 - 1
    return _gaussian_filter(field[None], torch.tensor([sigma], device=device), zero_edges=True)[0]


def _deformation(draw: AugmentationDraw, samples: np.ndarray, size: list[int], plane: int,
                 device: torch.device) -> torch.Tensor:
    """Displacements (voxels) ``(len(samples), *size, D)`` of the drawn elastic deformations; an anisotropic
    patch's field moves its last ``plane`` axes alike in every slice."""
    generator = torch.Generator(device=device).manual_seed(draw.deformation_seed)
    dims = len(size)
    fields = torch.zeros((len(samples), *size, dims), device=device)
    for index, b in enumerate(samples):
        if draw.deformation_alpha[b] <= 0:
            continue
        for axis in range(dims - plane, dims):
            moved = _smoothed_noise(size[dims - plane:], float(draw.deformation_sigma[b]), generator, device)
            fields[index, ..., axis] = moved * float(draw.deformation_alpha[b])  # broadcasts over a slice axis
    return fields


def _sampling_grid(matrices: torch.Tensor, read_size: list[int], size: list[int],
                   displacement: torch.Tensor | None = None) -> torch.Tensor:
    """``grid_sample``'s grid (align_corners=True) for output patches of ``size`` centred where
    :func:`_centre_crop` would cut them, each output offset (moved by ``displacement``, voxels) mapped through its
    sample's matrix."""
    device = matrices.device
    offsets = torch.stack(torch.meshgrid(*[torch.arange(p, device=device, dtype=torch.float32) - (p - 1) / 2
                                           for p in size], indexing="ij"), dim=-1)
    offsets = offsets.expand(len(matrices), *offsets.shape) if displacement is None else offsets + displacement
    centre = torch.tensor([(n - p) // 2 + (p - 1) / 2 for n, p in zip(read_size, size)], device=device)
    coordinates = torch.einsum("bij,b...j->b...i", matrices, offsets) + centre
    scale = torch.tensor([2 / max(n - 1, 1) for n in read_size], device=device)
    return (coordinates * scale - 1).flip(-1)  # grid_sample wants the last axis first


def _spatial(images: torch.Tensor, labels: torch.Tensor, draw: AugmentationDraw, size: list[int],
             plane: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sample's patch of ``size`` from the centre of the read patch, deformed, rotated and scaled where
    drawn (``plane``: how many of the last axes the transforms move)."""
    out_images, out_labels = _centre_crop(images, size).clone(), _centre_crop(labels, size).clone()
    samples = np.flatnonzero(draw.spatial_on)
    moved = torch.from_numpy(samples).to(images.device)
    if len(moved):
        matrices = torch.from_numpy(draw.spatial[draw.spatial_on]).to(images.device, torch.float32)
        displacement = (_deformation(draw, samples, size, plane, images.device)
                        if (draw.deformation_alpha[samples] > 0).any() else None)
        grid = _sampling_grid(matrices, list(images.shape[2:]), size, displacement)
        out_images[moved] = F.grid_sample(images[moved], grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=True)
        out_labels[moved] = F.grid_sample(labels[moved].float(), grid, mode="nearest", padding_mode="zeros",
                                          align_corners=True).to(labels.dtype)
    return out_images, out_labels


def _gaussian_kernels(sigmas: torch.Tensor) -> tuple[torch.Tensor, int]:
    """1D Gaussian kernels (K, 2r+1), truncated at 4 sigma as scipy's filter is, and their radius r."""
    radius = max(1, int(4 * float(sigmas.max()) + 0.5))
    taps = torch.arange(-radius, radius + 1, device=sigmas.device, dtype=torch.float32)
    kernels = torch.exp(-0.5 * (taps[None] / sigmas[:, None]) ** 2)
    return kernels / kernels.sum(dim=1, keepdim=True), radius


def _gaussian_filter(channels: torch.Tensor, sigmas: torch.Tensor, zero_edges: bool = False) -> torch.Tensor:
    """Each of ``channels`` (K, *spatial) filtered with a Gaussian of its own sigma, one axis at a time; beyond the
    edges the image is mirrored (or zero with ``zero_edges``)."""
    kernels, radius = _gaussian_kernels(sigmas)
    dims = channels.ndim - 1
    convolve = F.conv3d if dims == 3 else F.conv2d
    out = channels[None]
    for axis in range(dims):
        shape = [len(sigmas), 1] + [1] * dims
        shape[2 + axis] = 2 * radius + 1
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis):2 * (dims - axis)] = [radius, radius]
        mode = "constant" if zero_edges else "reflect" if out.shape[2 + axis] > radius else "replicate"
        out = convolve(F.pad(out, pad, mode=mode), kernels.reshape(shape), groups=len(sigmas))
    return out[0]


def _low_resolution(channel: torch.Tensor, zoom: float, keep_axes: tuple[int, ...]) -> torch.Tensor:
    """One channel (spatial...) down-sampled by ``zoom`` (nearest) and back up (linear), except ``keep_axes``."""
    size = list(channel.shape)
    small = [n if axis in keep_axes else max(1, round(n * zoom)) for axis, n in enumerate(size)]
    mode = "trilinear" if len(size) == 3 else "bilinear"
    down = F.interpolate(channel[None, None], size=small, mode="nearest")
    return F.interpolate(down, size=size, mode=mode, align_corners=False)[0, 0]


def _gamma(channels: torch.Tensor, gammas: torch.Tensor, inverted: bool) -> torch.Tensor:
    """Gamma per channel (K, *spatial) on the range scaled to [0, 1], keeping each channel's mean and spread."""
    flat = -channels.flatten(1) if inverted else channels.flatten(1)
    mean, std = flat.mean(dim=1, keepdim=True), flat.std(dim=1, correction=0, keepdim=True)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    out = ((flat - low) / (span + 1e-7)).pow(gammas[:, None]) * span + low
    out = (out - out.mean(dim=1, keepdim=True)) / (out.std(dim=1, correction=0, keepdim=True) + 1e-8) * std + mean
    return (-out if inverted else out).reshape(channels.shape)


def _selected(values: np.ndarray, off: float) -> tuple[list[int], list[int]]:
    samples, channels = np.nonzero(values != off)
    return samples.tolist(), channels.tolist()


@torch.no_grad()
def apply_augmentation(images: torch.Tensor, labels: torch.Tensor, draw: AugmentationDraw, patch_size: list[int],
                       settings: AugmentationSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment read patches ``images`` (B, C, *read) float and ``labels`` (B, 1, *read) integer to the patch
    size, as drawn. Labels keep their values (nearest neighbour); voxels rotated in from beyond the read patch get
    image 0 and label 0 (background)."""
    dims = len(patch_size)
    by_slice = slice_by_slice(patch_size, settings)
    images, labels = _spatial(images.float(), labels, draw, list(patch_size), dims - 1 if by_slice else dims)
    device = images.device
    noisy = np.flatnonzero(draw.noise_std > 0)
    if len(noisy):
        generator = torch.Generator(device=device).manual_seed(draw.noise_seed)
        noise = torch.randn((len(noisy), *images.shape[1:]), generator=generator, device=device)
        std = torch.tensor(draw.noise_std[noisy], device=device, dtype=torch.float32)
        images[torch.from_numpy(noisy).to(device)] += noise * _expand(std, dims + 1)
    samples, channels = _selected(draw.blur_sigma, 0.0)
    if samples:
        sigmas = torch.tensor(draw.blur_sigma[samples, channels], device=device, dtype=torch.float32)
        images[samples, channels] = _gaussian_filter(images[samples, channels], sigmas)
    images *= _expand(torch.tensor(draw.brightness, device=device, dtype=torch.float32), dims)
    samples, channels = _selected(draw.contrast, 1.0)
    if samples:
        picked = images[samples, channels].flatten(1)
        mean = picked.mean(dim=1, keepdim=True)
        low, high = picked.min(dim=1, keepdim=True).values, picked.max(dim=1, keepdim=True).values
        factors = torch.tensor(draw.contrast[samples, channels], device=device, dtype=torch.float32)[:, None]
        changed = torch.maximum(torch.minimum((picked - mean) * factors + mean, high), low)
        images[samples, channels] = changed.reshape(len(samples), *images.shape[2:])
    keep_axes = (0,) if by_slice else ()
    for b, c in zip(*_selected(draw.low_resolution, 1.0)):
        images[b, c] = _low_resolution(images[b, c], float(draw.low_resolution[b, c]), keep_axes)
    for values, inverted in ((draw.gamma_inverted, True), (draw.gamma, False)):
        samples, channels = _selected(values, 1.0)
        if samples:
            gammas = torch.tensor(values[samples, channels], device=device, dtype=torch.float32)
            images[samples, channels] = _gamma(images[samples, channels], gammas, inverted)
    for axis in range(dims):
        flipped = torch.from_numpy(np.flatnonzero(draw.mirror[:, axis])).to(device)
        if len(flipped):
            images[flipped] = images[flipped].flip(2 + axis)
            labels[flipped] = labels[flipped].flip(2 + axis)
    return images, labels


@dataclass(frozen=True)
class DeviceAugmentation:
    """The recipe for one run's patches: call it on a batch read at :attr:`read_size` with the batch's seed.

    Example:
        >>> augment = DeviceAugmentation([32, 32], AugmentationSettings())
        >>> images, labels = torch.zeros(2, 1, *augment.read_size), torch.zeros(2, 1, *augment.read_size)
        >>> [tuple(t.shape) for t in augment(images, labels.long(), seed=7)]
        [(2, 1, 32, 32), (2, 1, 32, 32)]
    """

    patch_size: list[int]
    settings: AugmentationSettings

    @property
    def read_size(self) -> list[int]:
        return sampling_patch_size(list(self.patch_size), self.settings)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        draw = draw_augmentation(np.random.default_rng(seed), images.shape[0], images.shape[1],
                                 list(self.patch_size), self.settings)
        return apply_augmentation(images, labels, draw, list(self.patch_size), self.settings)
