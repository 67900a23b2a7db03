"""The U-Net, built from a :class:`~autounet.network.config.NetworkConfig` alone (2D or 3D).

``UNet`` and ``build_network`` are imported on first use, so that reading plans (which hold a
NetworkConfig) does not import torch: preprocessing workers then start fast and stay small.
"""

from autounet.network.config import NetworkConfig

__all__ = ["NetworkConfig", "UNet", "build_network"]


def __getattr__(name: str):
    if name == "UNet":
        from autounet.network.unet import UNet

        return UNet
    if name == "build_network":
        from autounet.network.build import build_network

        return build_network
    raise AttributeError(f"module 'autounet.network' has no attribute '{name}'")
