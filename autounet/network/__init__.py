"""The U-Net, built from a :class:`~autounet.network.config.NetworkConfig` alone (2D or 3D)."""

from autounet.network.config import NetworkConfig
from autounet.network.unet import UNet, build_network

__all__ = ["NetworkConfig", "UNet", "build_network"]
