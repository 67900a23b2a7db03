"""The small config a U-Net is built from."""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("plain", "residual_encoder")


@dataclass
class NetworkConfig:
    """Everything needed to build the U-Net; planning writes it, training and inference read it.

    ``kernel_sizes[s]`` and ``strides[s]`` are per spatial axis for stage ``s``;
    ``strides[0]`` is all ones (the first stage keeps full resolution).

    Example:
        >>> cfg = NetworkConfig(conv_dim=2, in_channels=1, num_classes=2, features_per_stage=[8, 16],
        ...                     kernel_sizes=[[3, 3], [3, 3]], strides=[[1, 1], [2, 2]])
        >>> cfg.num_stages
        2
    """

    conv_dim: int
    in_channels: int
    num_classes: int
    features_per_stage: list[int]
    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    n_conv_per_stage: list[int] | None = None
    n_conv_per_stage_decoder: list[int] | None = None
    deep_supervision: bool = True
    negative_slope: float = 0.01
    architecture: str = "plain"
    """``plain`` (stages of convolutions) or ``residual_encoder`` (a stem convolution, then encoder stages of
    ``n_conv_per_stage[s]`` residual blocks of two convolutions each; the decoder is the plain one)."""

    def __post_init__(self) -> None:
        n = len(self.features_per_stage)
        if len(self.kernel_sizes) != n or len(self.strides) != n:
            raise ValueError("features_per_stage, kernel_sizes and strides need one entry per stage")
        if self.n_conv_per_stage is None:
            self.n_conv_per_stage = [2] * n
        if self.n_conv_per_stage_decoder is None:
            self.n_conv_per_stage_decoder = [2] * (n - 1)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, not '{self.architecture}'")

    @property
    def num_stages(self) -> int:
        return len(self.features_per_stage)

    def total_downsampling(self) -> list[int]:
        """The product of the strides per axis: patch sizes must be divisible by it."""
        total = [1] * self.conv_dim
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
        return total

    def output_scales(self) -> list[list[float]]:
        """The resolution of each deep-supervision output relative to the input, highest first."""
        scales, current = [], [1.0] * self.conv_dim
        for stride in self.strides[:-1]:
            current = [c / s for c, s in zip(current, stride)]
            scales.append(list(current))
        return scales
