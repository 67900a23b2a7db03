"""``plan_dataset``: make sure the fingerprint is current, plan every configuration, write plans.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autounet.dataset import DatasetSpec, load_spec
from autounet.errors import InvalidDatasetError, MissingArtifactError, UserError
from autounet.fingerprint import Fingerprint, load_fingerprint, save_fingerprint
from autounet.fingerprint.model import FINGERPRINT_FILE
from autounet.paths import DatasetLocation
from autounet.planning.memory_budget import MemoryBudget, memory_budget
from autounet.planning.plan_for_time import plan_time_budget
from autounet.planning.timing_allowance import TimingAllowance
from autounet.utils.locks import exclusive
from autounet.planning.configurations import plan_configurations
from autounet.planning.memory import estimate_training_memory_gb, memory_model_settings
from autounet.planning.plans import ConfigurationPlan, Plans, load_plans, plans_path, save_plans
from autounet.planning.inherited import inherit_configuration
from autounet.planning.presets import (configuration_preset, preset, preset_configuration_name,
                                       preset_memory_budget)
from autounet.planning.time_budget import format_duration
from autounet.planning.verify_step import require_cuda_for_verify, verify_configurations


@dataclass
class PlanningReport:
    """What plan_dataset did besides planning, for the CLI to tell the user."""

    fingerprinted: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _has_raw(location: DatasetLocation) -> bool:
    return (Path(location.raw) / "dataset.json").is_file()


def current_fingerprint(location: DatasetLocation, workers: int | None = None,
                        report: PlanningReport | None = None) -> Fingerprint:
    """The dataset's fingerprint, recomputed (after verification) when missing or when the raw files changed."""
    from autounet.fingerprint.compute import compute_fingerprint, raw_digest

    fingerprint_file = Path(location.preprocessed) / FINGERPRINT_FILE
    if not _has_raw(location):
        if fingerprint_file.is_file():
            return load_fingerprint(location.preprocessed)
        raise MissingArtifactError(f"{fingerprint_file}: not found, and there is no raw data at {location.raw} "
                                   "to compute it from.")
    digest = raw_digest(location.raw)
    if fingerprint_file.is_file():
        fingerprint = load_fingerprint(location.preprocessed)
        # Fingerprints made before the label detail was measured are made again, once.
        if fingerprint.raw_digest == digest and fingerprint.label_dice_when_coarsened(2) is not None:
            return fingerprint
    verify_or_raise(location.raw, workers, save_to=location.preprocessed)
    fingerprint = compute_fingerprint(location.raw, workers=workers)
    save_fingerprint(fingerprint, location.preprocessed)
    if report is not None:
        report.fingerprinted = True
    return fingerprint


VERIFY_ERRORS_SHOWN = 3


def verify_or_raise(raw_folder: Path, workers: int | None = None, save_to: Path | None = None) -> None:
    """Run dataset verification; raise a UserError quoting the first errors and their count if it fails. With
    ``save_to``, what it found (warnings included) is kept there as verify.json."""
    from autounet.dataset.verify import save_verify_report, verify_dataset

    report = verify_dataset(raw_folder, workers)
    if save_to is not None:
        save_verify_report(report, save_to)
    if not report.ok:
        shown = "; ".join(error.rstrip(".") for error in report.errors[:VERIFY_ERRORS_SHOWN])
        hidden = len(report.errors) - VERIFY_ERRORS_SHOWN
        more = f" (and {hidden} more)" if hidden > 0 else ""
        raise InvalidDatasetError(f"{raw_folder}: verification found {len(report.errors)} error"
                                  f"{'s' if len(report.errors) != 1 else ''}: {shown}{more}; "
                                  f"run `autounet verify` for the full report.")


def _label_counts(location: DatasetLocation, fingerprint: Fingerprint) -> tuple[int, int]:
    """Network outputs and the cascade's extra input channels (one per non-zero predicted value), from
    dataset.json; from the fingerprint's labels when the raw data is not here."""
    if _has_raw(location):
        spec: DatasetSpec = load_spec(location.raw)
        return spec.num_outputs, len(spec.predicted_foreground_values)
    foreground = len([v for v in fingerprint.label_values if v != 0])
    return foreground + 1, foreground


def replan_one(fingerprint: Fingerprint, num_classes: int, name: str, budget_gb: float,
               previous_stage_channels: int | None = None, preset_name: str | None = None) -> ConfigurationPlan:
    """Plan the configuration called ``name`` alone for ``budget_gb`` (the cascade stages come as a pair)."""
    cascade = name in ("3d_lowres", "3d_cascade_fullres")
    names = ["3d_fullres", "3d_lowres"] if cascade else [name]
    return plan_configurations(fingerprint, num_classes, budget_gb, names,
                               previous_stage_channels=previous_stage_channels, preset_name=preset_name)[name]


def apply_preset(budget: MemoryBudget, preset_name: str | None, explicit: bool) -> MemoryBudget:
    """``budget`` with its GB set by the preset's memory target (:func:`preset_memory_budget`) and a note why."""
    chosen = preset(preset_name)
    gb, note = preset_memory_budget(chosen, budget.gb, explicit, budget.hardware.device)
    if not note:
        return budget
    # When the preset's own target is planned for, the hardware's "planning for N GB" note would contradict it.
    notes = [note] if gb == chosen.memory_target_gb and not explicit else [*budget.notes, note]
    return MemoryBudget(gb, budget.hardware, notes, list(budget.warnings))


def plan_dataset(location: DatasetLocation, gpu_memory_gb: float | None = None, device: str = "auto",
                 configurations: list[str] | None = None, workers: int | None = None,
                 report: PlanningReport | None = None, budget: MemoryBudget | None = None,
                 verify: bool = False, time_budget_seconds: float | None = None,
                 preset_name: str | None = None, timing_allowance_seconds: float | None = None,
                 inherit: list[tuple[ConfigurationPlan, str]] | None = None) -> Plans:
    """Plan the dataset at ``location`` for the detected GPU (or ``gpu_memory_gb``) and write plans.json.

    Runs verification and fingerprinting first when the fingerprint is
    missing or the raw files changed since it was made. With ``verify`` (CUDA
    only) each configuration's real training step is measured and the
    configuration re-planned smaller if it overshoots. With
    ``time_budget_seconds`` (one fold's training and validation) the 2d and
    3d_fullres training iterations are timed here, each is made cheaper
    (narrower, smaller patch) until the budget buys it enough iterations, and
    one is chosen (``plans.time_budget``); ``timing_allowance_seconds`` caps the time spent measuring (networks
    beyond it are predicted, see :mod:`autounet.planning.timing_allowance`). A network made cheaper is stored
    under its own name (:func:`fitted_name`, e.g. ``2d_fitted_30m``) beside the unchanged memory plan. ``preset_name``
    (``resenc-m``, ``resenc-l``, ``resenc-xl``; default: the plain U-Net) chooses the network rules and the memory
    target (:mod:`autounet.planning.presets`); a preset's configurations carry its name (``3d_fullres_resenc-m``),
    and those of the other presets already in plans.json (same raw data) are kept beside them.
    ``inherit`` lists trained models' configurations with their datasets' names, each added under its own name
    with its spacing, patch and network (:mod:`autounet.planning.inherited`, for fine-tuning with ``train
    --pretrained``). The dataset's preprocessed folder is locked meanwhile: planning while a training or preprocess uses it is
    refused naming that command (``utils/locks.py``).

    Example:
        >>> plans = plan_dataset(locate_dataset("4", resolve_root()))  # doctest: +SKIP
        >>> plans.configuration("3d_fullres").patch_size
        [40, 56, 40]
    """
    # plans.json (and the fingerprint) are rewritten: not while a training reads them or preprocess writes the cache
    with exclusive(location.preprocessed, f"autounet plan {location.name}"):
        report = report if report is not None else PlanningReport()
        if verify:
            require_cuda_for_verify()
        chosen = preset(preset_name)
        budget = apply_preset(budget or memory_budget(device, gpu_memory_gb), chosen.name, gpu_memory_gb is not None)
        report.notes.extend(budget.notes)
        fingerprint = current_fingerprint(location, workers, report)
        num_classes, previous_channels = _label_counts(location, fingerprint)
        planned = plan_configurations(fingerprint, num_classes, budget.gb, configurations, notes=report.notes,
                                      previous_stage_channels=previous_channels, preset_name=chosen.name)
        if verify:
            planned = verify_configurations(planned, budget.gb,
                                            lambda name, gb: replan_one(fingerprint, num_classes, name, gb,
                                                                        previous_channels, chosen.name))
        if budget.hardware.device == "cpu" and gpu_memory_gb is None and any(not p.is_2d for p in planned.values()):
            report.warnings.extend(budget.warnings)
        plans = Plans(dataset_name=location.name, hardware=budget.hardware, memory_budget_gb=budget.gb,
                      configurations=planned, intensity_stats=list(fingerprint.channels),
                      raw_digest=fingerprint.raw_digest, preset=chosen.name,
                      extra={"memory_model": memory_model_settings()})
        if time_budget_seconds is not None:
            plans.time_budget, fitted = plan_time_budget(planned, time_budget_seconds, budget.hardware.device,
                                                          fingerprint.label_dice_when_coarsened,
                                                          allowance=TimingAllowance(timing_allowance_seconds))
            for name, plan in fitted.items():
                if plan is not planned[name]:
                    plan.estimated_memory_gb = round(estimate_training_memory_gb(plan.network, plan.patch_size,
                                                                                 plan.batch_size), 3)
                    add_fitted_configuration(plans, name, plan, time_budget_seconds)
        name_for_preset(plans, chosen.name)
        keep_other_presets(plans, location.preprocessed, report.notes)
        for source, source_dataset in inherit or []:
            name = inherit_configuration(plans, source, source_dataset, fingerprint, num_classes, fingerprint.is_2d)
            report.notes.append(f"{name}: {source.name} of {source_dataset} (spacing, patch, network and batch of "
                                f"the model; fine-tune with: autounet train {location.name} -c {name} "
                                f"--pretrained MODEL)")
        save_plans(plans, location.preprocessed)
        return plans


def fitted_name(name: str, budget_seconds: float) -> str:
    """The configuration name of ``name``'s network fitted to a time budget, saying what it was derived from and
    for which budget; nnU-Net's names (``2d``, ``3d_fullres``) keep their meaning: the memory plan.

    Example:
        >>> fitted_name("2d", 120), fitted_name("3d_fullres", 5400), fitted_name("2d", 45.4)
        ('2d_fitted_2m', '3d_fullres_fitted_1h30m', '2d_fitted_45s')
    """
    return f"{name}_fitted_{format_duration(budget_seconds).removesuffix('00s')}"


def add_fitted_configuration(plans: Plans, name: str, plan: ConfigurationPlan, budget_seconds: float) -> str:
    """Store the time-fitted ``plan`` of configuration ``name`` under its own name beside the memory plan, and make
    the time budget's record (its selected timing, its choice) speak of that name."""
    new_name = fitted_name(name, budget_seconds)
    plan.name = new_name
    plans.configurations[new_name] = plan
    record = plans.time_budget
    for timing in record.timings:
        if timing.configuration == name and timing.selected:
            timing.configuration = new_name
    if record.chosen == name:
        record.chosen = new_name
    return new_name


def name_for_preset(plans: Plans, preset_name: str) -> None:
    """Rename the configurations just planned with ``preset_name`` to carry its name
    (:func:`preset_configuration_name`; nothing changes for the default preset), with their cascade links and the
    time budget's record. Their preprocessed data keeps nnU-Net's identifier where the preset cannot change it (the
    spacing of 2d and 3d_fullres comes from the fingerprint alone); 3d_lowres's spacing follows its patch, so its
    data gets its own folder."""

    def renamed(name: str | None) -> str | None:
        return None if name is None else preset_configuration_name(name, preset_name)

    configurations = {}
    for name, plan in plans.configurations.items():
        plan.name, plan.previous_stage, plan.next_stage = (renamed(name), renamed(plan.previous_stage),
                                                           renamed(plan.next_stage))
        if plan.data_identifier.startswith("3d_lowres"):
            plan.data_identifier = renamed(plan.data_identifier)
        configurations[plan.name] = plan
    plans.configurations = configurations
    if plans.time_budget is not None:
        for timing in plans.time_budget.timings:
            timing.configuration = renamed(timing.configuration)
        plans.time_budget.chosen = renamed(plans.time_budget.chosen) if plans.time_budget.chosen else ""


def keep_other_presets(plans: Plans, preprocessed: Path, notes: list[str]) -> None:
    """Add to ``plans`` the configurations of other presets from the plans.json it replaces, when that was made from
    the same raw data: planning ``--preset resenc-m`` after the default keeps both."""
    path = plans_path(preprocessed)
    if not path.is_file():
        return
    try:
        earlier = load_plans(path)
    except UserError:
        return  # an unreadable plans.json is replaced, as before
    if earlier.raw_digest != plans.raw_digest:
        return
    legacy = set(earlier.legacy_preset_names())  # a preset under nnU-Net's names, as older versions wrote it
    kept = [name for name in earlier.configurations
            if configuration_preset(name) != plans.preset and name not in plans.configurations and name not in legacy]
    for name in kept:
        plans.configurations[name] = earlier.configurations[name]
    if kept:
        notes.append(f"kept from the earlier plans.json (other presets): {', '.join(kept)}")
