"""A plain convolutional U-Net with deep supervision, in 2D or 3D.

Encoder stages of (conv -> instance norm -> leaky ReLU) x n, the first conv of a
stage strided to downsample; decoder stages upsample with a transposed conv,
concatenate the skip connection and convolve; a 1x1 conv head per decoder
stage gives the deep-supervision outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from autounet.network.config import NetworkConfig

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_TRANSPOSED = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


class ConvBlock(nn.Sequential):
    """conv -> instance norm (affine) -> leaky ReLU."""

    def __init__(self, dim: int, in_ch: int, out_ch: int, kernel: list[int], stride: list[int], slope: float):
        super().__init__(
            _CONV[dim](in_ch, out_ch, kernel, stride=stride, padding=[k // 2 for k in kernel], bias=True),
            _NORM[dim](out_ch, eps=1e-5, affine=True),
            nn.LeakyReLU(slope, inplace=True),
        )


def _stage(dim: int, in_ch: int, out_ch: int, kernel: list[int], stride: list[int], n_convs: int,
           slope: float) -> nn.Sequential:
    blocks = [ConvBlock(dim, in_ch, out_ch, kernel, stride, slope)]
    blocks += [ConvBlock(dim, out_ch, out_ch, kernel, [1] * dim, slope) for _ in range(n_convs - 1)]
    return nn.Sequential(*blocks)


class UNet(nn.Module):
    """The U-Net a :class:`NetworkConfig` describes.

    ``forward`` returns the full-resolution logits, or, in training mode with
    deep supervision on, a list of logits from the highest resolution down.
    """

    def __init__(self, config: NetworkConfig, initialize: bool = True):
        super().__init__()
        self.config = config
        dim, feats, slope = config.conv_dim, config.features_per_stage, config.negative_slope
        self.encoder = nn.ModuleList()
        in_ch = config.in_channels
        for s in range(config.num_stages):
            self.encoder.append(_stage(dim, in_ch, feats[s], config.kernel_sizes[s], config.strides[s],
                                       config.n_conv_per_stage[s], slope))
            in_ch = feats[s]
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for s in reversed(range(config.num_stages - 1)):
            stride = config.strides[s + 1]
            self.upsample.append(_TRANSPOSED[dim](feats[s + 1], feats[s], stride, stride=stride, bias=True))
            self.decoder.append(_stage(dim, 2 * feats[s], feats[s], config.kernel_sizes[s], [1] * dim,
                                       config.n_conv_per_stage_decoder[s], slope))
            self.heads.append(_CONV[dim](feats[s], config.num_classes, 1, bias=True))
        if initialize:
            self.apply(_init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        deep_outputs = self.training and self.config.deep_supervision
        outputs = []
        for i, (up, stage, head) in enumerate(zip(self.upsample, self.decoder, self.heads)):
            x = stage(torch.cat([up(x), skips.pop()], dim=1))
            if deep_outputs or i == len(self.decoder) - 1:
                outputs.append(head(x))
        if deep_outputs:
            return outputs[::-1]
        return outputs[-1]


def _init_he(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

