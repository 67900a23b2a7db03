"""``build_network``: the network a :class:`NetworkConfig` describes (plain or residual-encoder U-Net).

It lives apart from both architectures so that neither imports the other's module to choose.
"""

from __future__ import annotations

from autounet.network.config import NetworkConfig
from autounet.network.residual_unet import ResidualEncoderUNet
from autounet.network.unet import UNet


def build_network(config: NetworkConfig, initialize: bool = True) -> UNet:
    """Build the U-Net for ``config`` (He-initialised unless ``initialize`` is False, e.g. for shape-only use).

    Example:
        >>> import torch
        >>> cfg = NetworkConfig(3, 1, 3, [8, 16], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]])
        >>> net = build_network(cfg).eval()
        >>> net(torch.zeros(1, 1, 8, 8, 8)).shape
        torch.Size([1, 3, 8, 8, 8])
    """
    if config.architecture == "residual_encoder":
        return ResidualEncoderUNet(config, initialize)
    return UNet(config, initialize)
