"""Data augmentation with batchgenerators, following the nnU-Net recipe.

The probabilities and ranges are an :class:`~autounet.training.settings.AugmentationSettings` (a field of the
training config, saved with the run; its defaults are the recipe's). Patches are sampled larger than the network's
patch (see :func:`sampling_patch_size`) so that rotation and scaling never pull
in padding at the corners; the spatial transform then cuts the centre. Anisotropic 3D patches are rotated and
scaled slice by slice, as nnU-Net does (:func:`slice_by_slice`).
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (BrightnessMultiplicativeTransform,
                                                         ContrastAugmentationTransform, GammaTransform)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from autounet.training.settings import AugmentationSettings

DEFAULT = AugmentationSettings()


def max_rotation(patch_size: list[int], settings: AugmentationSettings = DEFAULT) -> float:
    """The largest rotation (radians) about an axis for a patch of ``patch_size``."""
    return math.radians(settings.rotation_2d_degrees if len(patch_size) == 2 else settings.rotation_3d_degrees)


def slice_by_slice(patch_size: list[int], settings: AugmentationSettings = DEFAULT) -> bool:
    """Whether a patch is augmented as a stack of 2D slices (nnU-Net's "dummy 2D"): a 3D patch whose largest edge
    is over ``settings.anisotropy_threshold`` times its first.

    Example:
        >>> slice_by_slice([40, 56, 40]), slice_by_slice([12, 160, 160]), slice_by_slice([160, 160])
        (False, True, False)
    """
    return len(patch_size) == 3 and max(patch_size) / patch_size[0] > settings.anisotropy_threshold


def sampling_patch_size(patch_size: list[int], settings: AugmentationSettings = DEFAULT) -> list[int]:
    """The patch to read before augmentation: the bounding box of the patch rotated about any one axis, enlarged;
    a patch augmented slice by slice keeps its first edge.

    Example:
        >>> sampling_patch_size([40, 56, 40]), sampling_patch_size([12, 160, 160])
        ([74, 81, 74], [12, 258, 258])
    """
    if slice_by_slice(patch_size, settings):
        return [patch_size[0], *sampling_patch_size(patch_size[1:], settings)]
    angle = max_rotation(patch_size, settings)
    half = np.array(patch_size, dtype=float) / 2
    corners = np.array(list(itertools.product(*[(-h, h) for h in half])))
    extent = np.abs(corners).max(axis=0)
    angles = np.linspace(-angle, angle, 13)
    if len(patch_size) == 2:
        for a in angles:
            rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            extent = np.maximum(extent, np.abs(corners @ rotation.T).max(axis=0))
    else:
        # One axis at a time (as nnU-Net sizes it): a rotation about several axes can reach slightly past
        # this box; those corners are filled with padding, which costs less than reading far larger patches.
        for a in angles:
            for rotation in (_rotation_3d(a, 0, 0), _rotation_3d(0, a, 0), _rotation_3d(0, 0, a)):
                extent = np.maximum(extent, np.abs(corners @ rotation.T).max(axis=0))
    return [int(math.ceil(2 * e * settings.sampling_enlargement)) for e in extent]


def _rotation_3d(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class SlicesAsChannels(AbstractTransform):
    """``(B, C, Z, Y, X)`` data and labels as ``(B, C * Z, Y, X)``, so 2D transforms move every slice alike."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            b, c, z, y, x = batch[key].shape
            batch[f"{key}_channels_and_slices"] = (c, z)
            batch[key] = batch[key].reshape(b, c * z, y, x)
        return batch


class ChannelsAsSlices(AbstractTransform):
    """The inverse of :class:`SlicesAsChannels`, after the in-plane size changed."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            c, z = batch.pop(f"{key}_channels_and_slices")
            b, _, y, x = batch[key].shape
            batch[key] = batch[key].reshape(b, c, z, y, x)
        return batch


def build_augmentation(patch_size: list[int], settings: AugmentationSettings = DEFAULT) -> Compose:
    """The recipe's transforms for patches of ``patch_size`` (2 or 3 axes), in the order they run."""
    by_slice = slice_by_slice(patch_size, settings)
    spatial_patch = list(patch_size[1:]) if by_slice else list(patch_size)
    angle = max_rotation(spatial_patch, settings)
    rotation = (-angle, angle)
    no_rotation = (0.0, 0.0)
    is_3d = len(spatial_patch) == 3
    a = settings
    transforms = [SlicesAsChannels()] if by_slice else []
    transforms += [
        SpatialTransform(
            spatial_patch, patch_center_dist_from_border=None, do_elastic_deform=a.p_deformation > 0,
            alpha=a.deformation_alpha, sigma=a.deformation_sigma, p_el_per_sample=a.p_deformation,
            do_rotation=True, angle_x=rotation, angle_y=rotation if is_3d else no_rotation,
            angle_z=rotation if is_3d else no_rotation, p_rot_per_axis=1.0, p_rot_per_sample=a.p_rotation,
            do_scale=True, scale=a.scale_range, p_scale_per_sample=a.p_scale,
            border_mode_data="constant", border_cval_data=0, order_data=3,
            border_mode_seg="constant", border_cval_seg=-1, order_seg=1, random_crop=False),
    ]
    transforms += [ChannelsAsSlices()] if by_slice else []
    transforms += [
        GaussianNoiseTransform(a.noise_variance, p_per_sample=a.p_noise),
        GaussianBlurTransform(a.blur_sigma, different_sigma_per_channel=True, p_per_sample=a.p_blur,
                              p_per_channel=a.p_blur_per_channel),
        BrightnessMultiplicativeTransform(a.brightness_range, per_channel=True, p_per_sample=a.p_brightness),
        ContrastAugmentationTransform(a.contrast_range, p_per_sample=a.p_contrast),
        SimulateLowResolutionTransform(a.low_resolution_zoom, per_channel=True,
                                       p_per_channel=a.p_low_resolution_per_channel, order_downsample=0,
                                       order_upsample=3, p_per_sample=a.p_low_resolution,
                                       ignore_axes=(0,) if by_slice else None),
        GammaTransform(a.gamma_range, invert_image=True, per_channel=True, retain_stats=True,
                       p_per_sample=a.p_gamma_inverted),
        GammaTransform(a.gamma_range, invert_image=False, per_channel=True, retain_stats=True,
                       p_per_sample=a.p_gamma),
    ]
    if a.mirror:
        transforms.append(MirrorTransform(tuple(range(len(patch_size)))))
    return Compose(transforms)


def augment_batch(transform: Compose, images: np.ndarray, labels: np.ndarray,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``transform`` to a batch; the same ``seed`` gives the same result.

    batchgenerators draws from numpy's and Python's global generators, so both
    are seeded here and restored afterwards. Labels go through as floats (linear interpolation
    per label) and come back as int16.
    """
    saved_numpy, saved_python = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        out = transform(data=images.astype(np.float32, copy=False), seg=labels.astype(np.float32))
    finally:
        np.random.set_state(saved_numpy)
        random.setstate(saved_python)
    return out["data"].astype(np.float32, copy=False), np.rint(out["seg"]).astype(np.int16)
