"""Network presets: which U-Net the planner sizes, and for how much memory when the user does not say.

``default`` is nnU-Net's original plain U-Net, planned for the detected GPU (or ``--gpu-memory``). The
``resenc-*`` presets are the residual-encoder U-Nets nnU-Net's authors now recommend ("nnU-Net Revisited",
Isensee et al., MICCAI 2024): encoder stages of 1, 3, 4, 6, 6, ... residual blocks, one convolution per decoder
stage, planned for 11, 24 or 40 GB, and no "5 % of the dataset per batch" cap (a batch may cover the whole
dataset). The memory model is the same for every preset: the real network's traced training step.

The targets are the GPU memory nnU-Net's ResEnc plans really need. nnU-Net's M planner is nominally an 8 GB one,
but its reference value was kept from the plain U-Net while the residual network needs more memory per voxel: its
documentation gives M 9-11 GB, and autounet's memory model puts M's plans at 9.2 to 11.5 GB on the benchmark
datasets (bench/plans_vs_nnunet.py, docs/planning.md section 9); at 11 GB autounet plans the same patches. L and
XL plans estimate at their nominal 24 and 40 GB.

How the preset's memory target meets the hardware (see :func:`preset_memory_budget`):

- ``--gpu-memory`` given: it replaces the target, as nnU-Net's ``-gpu_memory_target`` does for its ResEnc planners
  (same network rules, sized for the memory asked for);
- a GPU detected: the smaller of the target and the GPU's memory (a plan that cannot run is of no use);
- no GPU: the target.

A preset's configurations carry its name (``3d_fullres_resenc-m``), so nnU-Net's names (``2d``, ``3d_fullres``,
``3d_lowres``, ``3d_cascade_fullres``) always mean nnU-Net's plain U-Net, the plans of several presets live side by
side in plans.json, and each trains into its own results folder (:func:`preset_configuration_name`).
"""

from __future__ import annotations

from dataclasses import dataclass

from autounet.errors import UserError
from autounet.planning.constants import CONVS_PER_STAGE, MAX_DATASET_FRACTION_PER_BATCH

RESENC_ENCODER_BLOCKS = (1, 3, 4, 6)
"""Residual blocks per encoder stage of nnU-Net's ResEnc presets; deeper stages repeat the last count."""


@dataclass(frozen=True)
class NetworkPreset:
    """The network rules of one preset; :func:`preset` looks one up by name."""

    name: str
    architecture: str
    """``plain`` or ``residual_encoder`` (:class:`autounet.network.NetworkConfig`)."""
    encoder_blocks: tuple[int, ...]
    """Per encoder stage: convolutions (plain) or residual blocks (residual encoder); the last repeats."""
    decoder_convs: int
    """Convolutions per decoder stage."""
    max_dataset_fraction_per_batch: float
    """A batch covers at most this fraction of the dataset's voxels (at least the minimum batch)."""
    memory_target_gb: float | None
    """GPU memory the preset is planned for when the user gives none; None: the detected GPU's."""
    description: str = ""

    def encoder_counts(self, num_stages: int) -> list[int]:
        """Blocks (or convolutions) for each of ``num_stages`` encoder stages.

        Example:
            >>> preset("resenc-m").encoder_counts(6)
            [1, 3, 4, 6, 6, 6]
        """
        counts = list(self.encoder_blocks[:num_stages])
        return counts + [self.encoder_blocks[-1]] * (num_stages - len(counts))


DEFAULT_PRESET = "default"

PRESETS: dict[str, NetworkPreset] = {p.name: p for p in (
    NetworkPreset(DEFAULT_PRESET, "plain", (CONVS_PER_STAGE,), CONVS_PER_STAGE, MAX_DATASET_FRACTION_PER_BATCH,
                  None, "nnU-Net's plain U-Net, for the detected GPU"),
    NetworkPreset("resenc-m", "residual_encoder", RESENC_ENCODER_BLOCKS, 1, 1.0, 11.0,
                  "residual-encoder U-Net for 11 GB (nnU-Net ResEnc M, 9-11 GB)"),
    NetworkPreset("resenc-l", "residual_encoder", RESENC_ENCODER_BLOCKS, 1, 1.0, 24.0,
                  "residual-encoder U-Net for 24 GB (nnU-Net ResEnc L)"),
    NetworkPreset("resenc-xl", "residual_encoder", RESENC_ENCODER_BLOCKS, 1, 1.0, 40.0,
                  "residual-encoder U-Net for 40 GB (nnU-Net ResEnc XL)"),
)}


def preset(name: str | None) -> NetworkPreset:
    """The preset called ``name`` (None: ``default``); a UserError naming the choices otherwise."""
    key = DEFAULT_PRESET if name is None else name.strip().lower()
    if key not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not '{name}'.")
    return PRESETS[key]


def preset_memory_budget(chosen: NetworkPreset, budget_gb: float, explicit: bool, device: str) -> tuple[float, str]:
    """The GB to plan ``chosen`` for, and a sentence saying why.

    ``budget_gb`` is what the hardware (or ``--gpu-memory`` when ``explicit``) offers; ``device`` is the detected
    accelerator kind (cuda, mps or cpu).

    Example:
        >>> preset_memory_budget(preset("resenc-l"), 11.0, explicit=False, device="cuda")[0]
        11.0
    """
    target = chosen.memory_target_gb
    if target is None:
        return budget_gb, ""
    if explicit:
        return budget_gb, (f"preset {chosen.name} planned for {budget_gb:g} GB (--gpu-memory) instead of its "
                           f"{target:g} GB target")
    if device == "cpu":
        return target, f"preset {chosen.name}: planning for its {target:g} GB target"
    if budget_gb < target:
        return budget_gb, (f"preset {chosen.name}: this GPU has {budget_gb:g} GB, less than the preset's {target:g} "
                           f"GB target, so the plans are made for {budget_gb:g} GB")
    return target, f"preset {chosen.name}: planning for its {target:g} GB target (the GPU has {budget_gb:g} GB)"


NNUNET_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")
"""nnU-Net's configuration names; in autounet they hold the default preset's (plain U-Net) plans only."""


def _base_of(name: str) -> str | None:
    """The nnU-Net configuration ``name`` starts with (``2d_fitted_10m`` -> ``2d``), or None."""
    matches = [base for base in NNUNET_CONFIGURATIONS if name == base or name.startswith(base + "_")]
    return max(matches, key=len) if matches else None


def preset_configuration_name(name: str, preset_name: str) -> str:
    """The name under which configuration ``name`` planned with preset ``preset_name`` is stored: unchanged for the
    default preset, the preset's name after nnU-Net's configuration name otherwise (what follows that name, e.g. a
    time budget, stays after it).

    Example:
        >>> preset_configuration_name("3d_fullres", "resenc-m"), preset_configuration_name("2d", "default")
        ('3d_fullres_resenc-m', '2d')
        >>> preset_configuration_name("2d_fitted_10m", "resenc-l")
        '2d_resenc-l_fitted_10m'
    """
    chosen, base = preset(preset_name).name, _base_of(name)
    if chosen == DEFAULT_PRESET or base is None or configuration_preset(name) != DEFAULT_PRESET:
        return name
    return f"{base}_{chosen}{name[len(base):]}"


def configuration_preset(name: str) -> str:
    """The preset whose plans a configuration called ``name`` holds (its name says it; otherwise the default).

    Example:
        >>> configuration_preset("3d_fullres_resenc-l_fitted_1h"), configuration_preset("2d_fitted_10m")
        ('resenc-l', 'default')
    """
    tokens = set(name.split("_"))
    return next((key for key in PRESETS if key != DEFAULT_PRESET and key in tokens), DEFAULT_PRESET)
