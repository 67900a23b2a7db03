"""Plans: the typed, versioned record of how each configuration is trained.

plans.json is meant to be read and edited by people. A configuration may
inherit from another and override a few keys, e.g.::

    "3d_fullres_bs12": {"inherits_from": "3d_fullres", "batch_size": 12}

Every later stage takes a configuration by name from :class:`Plans`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from autounet.errors import MissingArtifactError, PlanningError, UserError
from autounet.fingerprint.model import ChannelStats
from autounet.network.config import NetworkConfig
from autounet.planning.presets import NNUNET_CONFIGURATIONS, preset_configuration_name
from autounet.planning.time_plan import TimeBudgetPlan
from autounet.utils.atomic import write_json
from autounet.utils.serde import load_dataclass, to_json_value

PLANS_SCHEMA = 1
PLANS_FILE = "plans.json"


@dataclass
class ResamplingPlan:
    """Interpolation orders for bringing images and labels to the target spacing.

    On an axis more than ``anisotropy_threshold`` times coarser than the
    others, the ``*_z`` orders are used for that axis alone (nearest neighbour
    by default), so thick slices are not smeared into each other.
    """

    order_data: int = 3
    order_seg: int = 1
    order_data_z: int = 0
    order_seg_z: int = 0
    anisotropy_threshold: float = 3.0


@dataclass
class ConfigurationPlan:
    """How one configuration (``2d``, ``3d_fullres``, ``3d_lowres``, ...) is preprocessed and trained.

    ``spacing`` is the target spacing (z, y, x); a ``2d`` configuration
    resamples in-plane only and keeps each case's own z spacing. ``patch_size``
    has 2 entries for 2D configurations and 3 for 3D ones.
    """

    name: str
    data_identifier: str
    is_2d: bool
    spacing: list[float]
    median_shape: list[int]
    patch_size: list[int]
    batch_size: int
    network: NetworkConfig
    normalization: list[str]
    use_mask_for_norm: list[bool]
    resampling: ResamplingPlan = field(default_factory=ResamplingPlan)
    estimated_memory_gb: float | None = None
    measured_memory_gb: float | None = None
    previous_stage: str | None = None
    next_stage: str | None = None
    inherits_from: str | None = None


@dataclass
class HardwareInfo:
    """The accelerator a plan was made for."""

    device: str
    name: str = ""
    total_memory_gb: float | None = None
    free_memory_gb: float | None = None
    count: int = 0


@dataclass
class Plans:
    """All configurations planned for one dataset, with what they were planned for."""

    dataset_name: str
    hardware: HardwareInfo
    memory_budget_gb: float
    configurations: dict[str, ConfigurationPlan]
    intensity_stats: list[ChannelStats]
    """Foreground intensity statistics per channel, used by CT normalisation."""
    raw_digest: str = ""
    preset: str = "default"
    """The network preset the configurations were planned with (``plan --preset``; plans without it: default)."""
    time_budget: TimeBudgetPlan | None = None
    """With ``plan --budget DURATION``: the measured seconds per iteration and the configuration chosen."""
    schema_version: int = PLANS_SCHEMA
    extra: dict = field(default_factory=dict)

    def configuration(self, name: str) -> ConfigurationPlan:
        """The configuration called ``name``; a clear error listing the others if there is none."""
        if name not in self.configurations:
            raise UserError(f"configuration '{name}' is not in the plans (planned: "
                            f"{', '.join(self.configurations)}).")
        return self.configurations[name]

    def default_configuration(self) -> str:
        """The configuration trained when none is named: the time budget's choice, else the latest preset's
        3d_fullres (3D data) or 2d (``3d_fullres_resenc-m`` after ``plan --preset resenc-m``)."""
        if self.time_budget is not None and self.time_budget.chosen in self.configurations:
            return self.time_budget.chosen
        names = [preset_configuration_name(base, self.preset) for base in ("3d_fullres", "2d")]
        return next((name for name in names if name in self.configurations), names[0])

    def legacy_preset_names(self) -> list[str]:
        """Configurations under nnU-Net's names holding another preset's network, as older autounet versions wrote
        plans.json. Empty for current plans."""
        return [name for name, plan in self.configurations.items()
                if name in NNUNET_CONFIGURATIONS and plan.network.architecture != "plain"]

    def to_json(self) -> dict:
        return to_json_value(self)

    @classmethod
    def from_json(cls, data: dict) -> "Plans":
        """Build Plans from JSON, resolving configurations that inherit from others."""
        data = dict(data)
        if data.get("schema_version", PLANS_SCHEMA) > PLANS_SCHEMA:
            raise PlanningError(f"plans.json has schema version {data['schema_version']}; this autounet reads "
                                f"up to {PLANS_SCHEMA}. Update autounet or re-run `autounet plan`.")
        data["configurations"] = resolve_inheritance(data.get("configurations", {}))
        return load_dataclass(cls, data)


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_inheritance(configurations: dict[str, dict]) -> dict[str, dict]:
    """Expand every configuration that names ``inherits_from`` into a complete one."""
    resolved: dict[str, dict] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict:
        if name in resolved:
            return resolved[name]
        if name not in configurations:
            raise PlanningError(f"plans.json: configuration '{chain[-1]}' inherits from unknown '{name}'.")
        if name in chain:
            raise PlanningError(f"plans.json: configurations inherit in a cycle: {' -> '.join(chain + (name,))}.")
        own = configurations[name]
        parent = own.get("inherits_from")
        full = _merge(resolve(parent, chain + (name,)), own) if parent else dict(own)
        full["name"] = name
        resolved[name] = full
        return full

    for name in configurations:
        resolve(name, ())
    return resolved


def plans_path(preprocessed_folder: Path) -> Path:
    return Path(preprocessed_folder) / PLANS_FILE


def save_plans(plans: Plans, preprocessed_folder: Path) -> Path:
    """Write plans.json into the dataset's preprocessed folder atomically; return its path."""
    path = plans_path(preprocessed_folder)
    write_json(path, plans.to_json())
    return path


def load_dataset_plans(preprocessed_folder: Path) -> Plans:
    """A dataset's plans.json (:func:`load_plans`) for preprocessing and training: one made by an older autounet
    that kept a preset's network under nnU-Net's names is refused, naming the command that plans it again."""
    plans = load_plans(preprocessed_folder)
    legacy = plans.legacy_preset_names()
    if legacy:
        raise UserError(f"{plans_path(preprocessed_folder)}: holds the {plans.preset} preset's networks under "
                        f"nnU-Net's names ({', '.join(legacy)}), as older autounet versions wrote it; plan again "
                        f"with `autounet plan {plans.dataset_name} --preset {plans.preset}` (the preprocessed data "
                        f"and trained models stay usable), which names them "
                        f"{preset_configuration_name(legacy[0], plans.preset)} and so on.")
    return plans


def load_plans(preprocessed_folder_or_file: Path) -> Plans:
    """Read plans.json from a folder (or the file itself)."""
    path = Path(preprocessed_folder_or_file)
    if path.is_dir() or not path.suffix:
        path = plans_path(path)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: not found; run `autounet plan` first.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: is not valid JSON ({error}).") from error
    try:
        return Plans.from_json(data)
    except (KeyError, TypeError) as error:
        raise UserError(f"{path}: is not a valid plans file ({error!r}).") from error
