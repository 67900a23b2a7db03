"""What one training sample costs a U-Net, counted from its config: for predicting speed without timing it."""

from __future__ import annotations

import math

from autounet.network.config import NetworkConfig

ELEMENT_WEIGHT = 2000.0
"""The default ``element_weight`` (planning's is a field of its time-planning settings, saved in plans.json).
One activation element (written, normalised, activated, and all of it again backwards) costs about as much
time as this many convolution multiply-adds on a CPU. Fitted to ISBI 2012 timings on 2 cores: per sample 2.95 s
(512x512, 32 features), 1.3 s (16 features), 0.26-0.39 s (256x256), 0.075 s (128x128); this weight predicts 2.76,
1.22, 0.30 and 0.075 s from the last. Halving the width saves 2.3x, not the 4x of the multiply-adds alone."""


def _voxels(patch_size: list[int], scale: list[int]) -> int:
    return math.prod(max(1, p // s) for p, s in zip(patch_size, scale))


def sample_cost(network: NetworkConfig, patch_size: list[int], element_weight: float = ELEMENT_WEIGHT) -> float:
    """Relative work of one sample's forward pass through ``network`` at ``patch_size``: convolution
    multiply-adds plus ``element_weight`` per activation element. Training time grows about in proportion. A
    residual encoder's stage counts blocks of two convolutions each (the 1x1 shortcuts are left out).

    Example:
        >>> from autounet.network.config import NetworkConfig
        >>> net = NetworkConfig(2, 1, 2, [8, 16], [[3, 3], [3, 3]], [[1, 1], [2, 2]])
        >>> sample_cost(net, [64, 64]) < sample_cost(net, [128, 128])
        True
    """
    multiply_adds = 0.0
    elements = 0.0
    scale = [1] * network.conv_dim
    scales, in_channels = [], network.in_channels
    for stage, features in enumerate(network.features_per_stage):
        scale = [s * t for s, t in zip(scale, network.strides[stage])]
        scales.append(list(scale))
        voxels = _voxels(patch_size, scale)
        kernel = math.prod(network.kernel_sizes[stage])
        convs = network.n_conv_per_stage[stage] * (2 if network.architecture == "residual_encoder" else 1)
        multiply_adds += voxels * kernel * features * (in_channels + (convs - 1) * features)
        elements += voxels * features * convs
        in_channels = features
    for stage in reversed(range(network.num_stages - 1)):
        features, below = network.features_per_stage[stage], network.features_per_stage[stage + 1]
        voxels = _voxels(patch_size, scales[stage])
        kernel = math.prod(network.kernel_sizes[stage])
        convs = network.n_conv_per_stage_decoder[stage]
        multiply_adds += voxels * below * features  # transposed convolution: one tap per output voxel
        multiply_adds += voxels * kernel * features * (2 * features + (convs - 1) * features)
        elements += voxels * features * (convs + 2)
    return multiply_adds + element_weight * elements
