"""A U-Net whose encoder is made of residual blocks (the layout of nnU-Net's residual-encoder presets).

A stem convolution brings the input to the first stage's width; each encoder stage is a stack of residual
blocks (conv -> norm -> leaky ReLU -> conv -> norm, added to the block's input, then leaky ReLU). The first block
of a stage carries the stage's stride; its shortcut averages over the stride and projects the channels with a
1x1 convolution and a norm. The decoder, heads and outputs are those of the plain :class:`UNet`.
"""

from __future__ import annotations

import torch
from torch import nn

from autounet.network.config import NetworkConfig
from autounet.network.unet import _CONV, _NORM, ConvBlock, UNet, _init_he

_AVERAGE = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


class ResidualBlock(nn.Module):
    """Two convolutions with a shortcut: ``act(norm(conv(act(norm(conv(x))))) + shortcut(x))``.

    The shortcut is the identity when stride and width are unchanged, else (average pooling over the
    stride, when there is one) -> 1x1 convolution without bias -> norm.
    """

    def __init__(self, dim: int, in_ch: int, out_ch: int, kernel: list[int], stride: list[int], slope: float):
        super().__init__()
        padding = [k // 2 for k in kernel]
        self.conv1 = ConvBlock(dim, in_ch, out_ch, kernel, stride, slope)
        self.conv2 = nn.Sequential(
            _CONV[dim](out_ch, out_ch, kernel, stride=1, padding=padding, bias=True),
            _NORM[dim](out_ch, eps=1e-5, affine=True),
        )
        self.shortcut: nn.Module = nn.Identity()
        strided = any(s != 1 for s in stride)
        if strided or in_ch != out_ch:
            layers: list[nn.Module] = [_AVERAGE[dim](stride, stride)] if strided else []
            layers += [_CONV[dim](in_ch, out_ch, 1, bias=False), _NORM[dim](out_ch, eps=1e-5, affine=True)]
            self.shortcut = nn.Sequential(*layers)
        self.activation = nn.LeakyReLU(slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResidualEncoderUNet(UNet):
    """The U-Net a :class:`NetworkConfig` with ``architecture="residual_encoder"`` describes.

    ``n_conv_per_stage[s]`` is the number of residual blocks of encoder stage ``s``.

    Example:
        >>> cfg = NetworkConfig(2, 1, 3, [4, 8], [[3, 3]] * 2, [[1, 1], [2, 2]], n_conv_per_stage=[1, 2],
        ...                     architecture="residual_encoder")
        >>> ResidualEncoderUNet(cfg).eval()(torch.zeros(1, 1, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, config: NetworkConfig, initialize: bool = True):
        # The plain parent builds the decoder and heads this network shares; its plain encoder is replaced.
        super().__init__(config, initialize=False)
        dim, feats, slope = config.conv_dim, config.features_per_stage, config.negative_slope
        self.stem = ConvBlock(dim, config.in_channels, feats[0], config.kernel_sizes[0], [1] * dim, slope)
        self.encoder = nn.ModuleList()
        in_ch = feats[0]
        for s in range(config.num_stages):
            blocks = [ResidualBlock(dim, in_ch, feats[s], config.kernel_sizes[s], config.strides[s], slope)]
            blocks += [ResidualBlock(dim, feats[s], feats[s], config.kernel_sizes[s], [1] * dim, slope)
                       for _ in range(config.n_conv_per_stage[s] - 1)]
            self.encoder.append(nn.Sequential(*blocks))
            in_ch = feats[s]
        if initialize:
            self.apply(_init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return super().forward(self.stem(x))
