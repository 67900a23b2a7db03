"""Which parameter of nnU-Net's U-Nets (dynamic_network_architectures' PlainConvUNet and ResidualEncoderUNet)
is which parameter of autounet's :class:`~autounet.network.unet.UNet` / residual-encoder U-Net.

The layers correspond one to one, so a table of names, generated from the :class:`NetworkConfig`, translates a
state dict either way. nnU-Net's state dicts also hold every tensor a second time under aliases
(``...all_modules...`` and ``decoder.encoder...``); those are not in the table and are checked to be copies.
"""

from __future__ import annotations

from autounet.network.config import NetworkConfig

ALIAS_MARKERS = ("all_modules",)
ALIAS_PREFIXES = ("decoder.encoder.",)


def _conv_norm(nnunet: str, ours: str, bias: bool = True) -> dict[str, str]:
    """A conv followed by its norm: nnU-Net's ``X.conv`` / ``X.norm`` are autounet's ``Y.0`` / ``Y.1``."""
    table = {f"{nnunet}.conv.weight": f"{ours}.0.weight"}
    if bias:
        table[f"{nnunet}.conv.bias"] = f"{ours}.0.bias"
    table.update({f"{nnunet}.norm.weight": f"{ours}.1.weight", f"{nnunet}.norm.bias": f"{ours}.1.bias"})
    return table


def _plain_encoder(config: NetworkConfig) -> dict[str, str]:
    table: dict[str, str] = {}
    for s in range(config.num_stages):
        for i in range(config.n_conv_per_stage[s]):
            table.update(_conv_norm(f"encoder.stages.{s}.0.convs.{i}", f"encoder.{s}.{i}"))
    return table


def _residual_encoder(config: NetworkConfig) -> dict[str, str]:
    table = _conv_norm("encoder.stem.convs.0", "stem")
    in_ch = config.features_per_stage[0]
    for s in range(config.num_stages):
        for b in range(config.n_conv_per_stage[s]):
            theirs, ours = f"encoder.stages.{s}.blocks.{b}", f"encoder.{s}.{b}"
            table.update(_conv_norm(f"{theirs}.conv1", f"{ours}.conv1"))
            table.update(_conv_norm(f"{theirs}.conv2", f"{ours}.conv2"))
            strided = b == 0 and any(x != 1 for x in config.strides[s])
            if b == 0 and (strided or in_ch != config.features_per_stage[s]):
                at = 1 if strided else 0  # the average pooling, when there is one, comes first
                table[f"{theirs}.skip.{at}.conv.weight"] = f"{ours}.shortcut.{at}.weight"
                table[f"{theirs}.skip.{at}.norm.weight"] = f"{ours}.shortcut.{at + 1}.weight"
                table[f"{theirs}.skip.{at}.norm.bias"] = f"{ours}.shortcut.{at + 1}.bias"
        in_ch = config.features_per_stage[s]
    return table


def _decoder(config: NetworkConfig) -> dict[str, str]:
    table: dict[str, str] = {}
    for d, s in enumerate(reversed(range(config.num_stages - 1))):
        table[f"decoder.transpconvs.{d}.weight"] = f"upsample.{d}.weight"
        table[f"decoder.transpconvs.{d}.bias"] = f"upsample.{d}.bias"
        for i in range(config.n_conv_per_stage_decoder[s]):
            table.update(_conv_norm(f"decoder.stages.{d}.convs.{i}", f"decoder.{d}.{i}"))
        table[f"decoder.seg_layers.{d}.weight"] = f"heads.{d}.weight"
        table[f"decoder.seg_layers.{d}.bias"] = f"heads.{d}.bias"
    return table


def nnunet_parameter_names(config: NetworkConfig) -> dict[str, str]:
    """nnU-Net parameter name -> autounet parameter name, for every parameter of the network ``config`` builds.

    Example:
        >>> cfg = NetworkConfig(2, 1, 2, [4, 8], [[3, 3]] * 2, [[1, 1], [2, 2]])
        >>> nnunet_parameter_names(cfg)["decoder.stages.0.convs.1.norm.bias"]
        'decoder.0.1.1.bias'
    """
    encoder = _residual_encoder(config) if config.architecture == "residual_encoder" else _plain_encoder(config)
    return {**encoder, **_decoder(config)}


def is_alias(name: str) -> bool:
    """True for nnU-Net's second names of tensors that are also stored under their main name."""
    return name.startswith(ALIAS_PREFIXES) or any(f".{m}." in f".{name}." for m in ALIAS_MARKERS)
