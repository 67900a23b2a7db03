"""Plan the configurations (2d, 3d_fullres, 3d_lowres) of a dataset from its fingerprint and a budget."""

from __future__ import annotations

import copy

import numpy as np

from autounet.errors import PlanningError, UserError
from autounet.fingerprint import Fingerprint
from autounet.planning.constants import (LOWRES_COVERAGE_THRESHOLD, LOWRES_MAX_STEPS, LOWRES_SPACING_STEP,
                                         POOL_SPACING_RATIO, RESAMPLE_ORDER_DATA, RESAMPLE_ORDER_SEG,
                                         RESAMPLE_ORDER_Z, ANISOTROPY_RATIO)
from autounet.planning.fit import FittedConfiguration, fit_to_budget, rough_patch_size
from autounet.planning.normalization import normalization_scheme, use_mask_for_norm
from autounet.planning.plans import ConfigurationPlan, ResamplingPlan
from autounet.planning.presets import NetworkPreset, preset
from autounet.planning.spacing import median_shape_at, target_spacing

ALL_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")


def coverage(patch_size: list[int], median_shape: list[int]) -> float:
    """Fraction of the median image's voxels one patch covers."""
    return float(np.prod(patch_size, dtype=float) / np.prod(median_shape, dtype=float))


def lowres_spacings(fullres: list[float], steps: int = LOWRES_MAX_STEPS) -> list[list[float]]:
    """Ever coarser spacings: each step multiplies by 1.03 the axes more than 2x finer than the coarsest,
    or every axis once none is, so anisotropic data first becomes more isotropic."""
    spacings = [list(fullres)]
    current = np.asarray(fullres, dtype=float)
    for _ in range(steps):
        fine = current.max() / current > POOL_SPACING_RATIO
        current = current * np.where(fine, LOWRES_SPACING_STEP, 1.0) if fine.any() else current * LOWRES_SPACING_STEP
        spacings.append([float(v) for v in current])
    return spacings


class ConfigurationPlanner:
    """Plans each configuration of one dataset for one budget (pure: fingerprint in, plans out)."""

    def __init__(self, fingerprint: Fingerprint, num_classes: int, budget_gb: float, amp: bool = True,
                 rules: NetworkPreset | None = None):
        if len(fingerprint.cases) < 2:
            raise UserError(f"dataset {fingerprint.dataset_name} has {len(fingerprint.cases)} training case; "
                            "planning (and cross-validation) needs at least 2.")
        self.fingerprint = fingerprint
        self.num_classes = num_classes
        self.in_channels = len(fingerprint.channel_names)
        self.budget_gb = budget_gb
        self.amp = amp
        self.rules = rules or preset(None)
        self.fullres_spacing = target_spacing(fingerprint)
        self.fullres_shape = median_shape_at(fingerprint, self.fullres_spacing)

    def _dataset_voxels(self, median_shape: list[int]) -> float:
        return float(np.prod(median_shape, dtype=float)) * len(self.fingerprint.cases)

    def _fit(self, spacing: list[float], median_shape: list[int], dataset_voxels: float) -> FittedConfiguration:
        return fit_to_budget(spacing, median_shape, self.in_channels, self.num_classes, self.budget_gb,
                             dataset_voxels, self.amp, self.rules)

    def _plan(self, name: str, spacing: list[float], median_shape: list[int], fitted: FittedConfiguration,
              is_2d: bool) -> ConfigurationPlan:
        schemes = [normalization_scheme(self.fingerprint.channel_names[c]) for c in range(self.in_channels)]
        relative = self.fingerprint.median_relative_size_after_crop
        return ConfigurationPlan(
            name=name, data_identifier=name, is_2d=is_2d, spacing=[float(s) for s in spacing],
            median_shape=[int(m) for m in median_shape], patch_size=fitted.patch_size,
            batch_size=fitted.batch_size, network=fitted.network, normalization=schemes,
            use_mask_for_norm=[use_mask_for_norm(s, relative) for s in schemes],
            resampling=ResamplingPlan(RESAMPLE_ORDER_DATA, RESAMPLE_ORDER_SEG, RESAMPLE_ORDER_Z, RESAMPLE_ORDER_Z,
                                      ANISOTROPY_RATIO),
            estimated_memory_gb=round(fitted.estimated_memory_gb, 3))

    def plan_2d(self) -> ConfigurationPlan:
        """In-plane configuration: each slice at the target in-plane spacing; z keeps the median spacing."""
        median_z = float(self.fingerprint.median_spacing[0])
        spacing = [median_z, *self.fullres_spacing[1:]]
        shape = median_shape_at(self.fingerprint, spacing)
        fitted = self._fit(spacing[1:], shape[1:], self._dataset_voxels(shape))
        return self._plan("2d", spacing, shape[1:], fitted, is_2d=True)

    def plan_3d_fullres(self) -> ConfigurationPlan:
        if self.fingerprint.is_2d:
            raise UserError(f"dataset {self.fingerprint.dataset_name} is 2D; only the '2d' configuration can be "
                            "planned for it.")
        fitted = self._fit(self.fullres_spacing, self.fullres_shape, self._dataset_voxels(self.fullres_shape))
        return self._plan("3d_fullres", self.fullres_spacing, self.fullres_shape, fitted, is_2d=False)

    def plan_3d_lowres(self, fullres: ConfigurationPlan) -> ConfigurationPlan | None:
        """A coarser configuration when the fullres patch covers under a quarter of the median image, else None.

        The spacing grows in 3 % steps until the low-resolution patch covers at
        least a quarter of the median image at that spacing: the smallest such
        step (found by bisection on a quick estimate, then exactly).
        """
        if coverage(fullres.patch_size, fullres.median_shape) >= LOWRES_COVERAGE_THRESHOLD:
            return None
        spacings = lowres_spacings(self.fullres_spacing)
        fitted: dict[int, tuple[list[int], FittedConfiguration]] = {}

        def fit_at(step: int) -> tuple[list[int], FittedConfiguration]:
            if step not in fitted:
                shape = median_shape_at(self.fingerprint, spacings[step])
                fitted[step] = shape, self._fit(spacings[step], shape, self._dataset_voxels(shape))
            return fitted[step]

        def covers(step: int) -> bool:
            shape, fit = fit_at(step)
            return coverage(fit.patch_size, shape) >= LOWRES_COVERAGE_THRESHOLD

        def roughly_covers(step: int) -> bool:
            shape = median_shape_at(self.fingerprint, spacings[step])
            patch = rough_patch_size(spacings[step], shape, fullres.network, self.budget_gb,
                                     self._dataset_voxels(shape), self.amp,
                                     self.rules.max_dataset_fraction_per_batch)
            return coverage(patch, shape) >= LOWRES_COVERAGE_THRESHOLD

        # Bisect with the quick approximation, then walk to the smallest step whose exact plan covers enough.
        last = len(spacings) - 1
        low, high = 1, last
        while low < high:
            middle = (low + high) // 2
            if roughly_covers(middle):
                high = middle
            else:
                low = middle + 1
        if covers(low):
            while low > 1 and covers(low - 1):
                low -= 1
        else:
            while low < last and not covers(low):
                low += 1
            if not covers(low):
                raise PlanningError(f"dataset {self.fingerprint.dataset_name}: no 3d_lowres spacing up to "
                                    f"{LOWRES_SPACING_STEP ** last:.0f}x coarser gives a patch covering a quarter "
                                    "of the image; plan 2d or 3d_fullres only.")
        shape, fit = fit_at(low)
        plan = self._plan("3d_lowres", spacings[low], shape, fit, is_2d=False)
        plan.next_stage = "3d_cascade_fullres"
        return plan


def cascade_plan(fullres: ConfigurationPlan, previous_stage_channels: int) -> ConfigurationPlan:
    """``3d_cascade_fullres``: the fullres plan (same data, patch and batch) whose network also takes the
    3d_lowres prediction, one-hot encoded, as ``previous_stage_channels`` extra input channels.

    Example:
        >>> cascade_plan(fullres, 2).network.in_channels == fullres.network.in_channels + 2  # doctest: +SKIP
        True
    """
    cascade = copy.deepcopy(fullres)
    cascade.name, cascade.previous_stage = "3d_cascade_fullres", "3d_lowres"
    cascade.network.in_channels = fullres.network.in_channels + previous_stage_channels
    return cascade


def plan_configurations(fingerprint: Fingerprint, num_classes: int, budget_gb: float,
                        names: list[str] | None = None, amp: bool = True,
                        notes: list[str] | None = None,
                        previous_stage_channels: int | None = None,
                        preset_name: str | None = None) -> dict[str, ConfigurationPlan]:
    """Plan the configurations called ``names`` (default: all that apply to the data) with the network rules of
    the preset ``preset_name`` (:mod:`autounet.planning.presets`; default: nnU-Net's plain U-Net).

    Sentences for the user (e.g. why 3d_lowres was not planned) are appended to ``notes``.
    ``previous_stage_channels`` is the number of values a predicted label map holds besides background
    (:attr:`DatasetSpec.predicted_foreground_values`); it defaults to ``num_classes - 1``.

    2D data gets only ``2d``; 3D data gets ``2d``, ``3d_fullres`` and, when the
    fullres patch covers under a quarter of the median image, ``3d_lowres``
    plus ``3d_cascade_fullres`` (fullres trained on top of lowres predictions).
    """
    unknown = [n for n in names or [] if n not in ALL_CONFIGURATIONS]
    if unknown:
        raise UserError(f"unknown configuration '{unknown[0]}'; choose from {', '.join(ALL_CONFIGURATIONS)}.")
    if fingerprint.is_2d and names and any(n != "2d" for n in names):
        wrong = next(n for n in names if n != "2d")
        raise UserError(f"dataset {fingerprint.dataset_name} is 2D; '{wrong}' cannot be planned for it "
                        "(only '2d').")
    wanted = list(names) if names else (["2d"] if fingerprint.is_2d else list(ALL_CONFIGURATIONS))
    planner = ConfigurationPlanner(fingerprint, num_classes, budget_gb, amp, preset(preset_name))
    plans: dict[str, ConfigurationPlan] = {}
    if "2d" in wanted:
        plans["2d"] = planner.plan_2d()
    if "3d_fullres" in wanted or "3d_lowres" in wanted:
        fullres = planner.plan_3d_fullres()
        if "3d_fullres" in wanted:
            plans["3d_fullres"] = fullres
        lowres = planner.plan_3d_lowres(fullres) if "3d_lowres" in wanted else None
        if lowres is None and names and "3d_lowres" in names:
            message = (f"3d_lowres is not needed: the 3d_fullres patch covers "
                       f"{coverage(fullres.patch_size, fullres.median_shape):.0%} of the median image (a cascade is "
                       f"planned below {LOWRES_COVERAGE_THRESHOLD:.0%})")
            if len(names) == 1:
                raise UserError(f"dataset {fingerprint.dataset_name}: {message}; plan 3d_fullres instead.")
            if notes is not None:
                notes.append(message)
        if lowres is not None:
            plans["3d_lowres"] = lowres
            extra = num_classes - 1 if previous_stage_channels is None else previous_stage_channels
            plans["3d_cascade_fullres"] = cascade_plan(fullres, extra)
    return plans
