"""A network fitted to a time budget gets its own configuration name; nnU-Net's names keep the memory plan."""

from __future__ import annotations

from dataclasses import asdict

import autounet.planning.planner as planner
from autounet.paths import locate_dataset, resolve_root
from autounet.planning.plans import load_plans
from autounet.planning.time_plan import ConfigurationTiming, TimeBudgetPlan
from autounet.planning.variants import narrower

NNUNET_NAMES = ("2d", "3d_fullres", "3d_lowres")


def _fake_time_planning(configurations, budget_seconds, device, label_dice=None, allowance=None):
    """What plan_time_budget returns when 2d had to be made narrower and 3d_fullres bought enough as planned."""
    fitted = {"2d": narrower(configurations["2d"]), "3d_fullres": configurations["3d_fullres"]}
    timings = [ConfigurationTiming("2d", 0.2, 0.01, 100, selected=False),
               ConfigurationTiming("2d", 0.05, 0.01, 2400),
               ConfigurationTiming("3d_fullres", 0.06, 0.02, 2000)]
    return TimeBudgetPlan(budget_seconds, device, timings, chosen="2d"), fitted


def test_a_fitted_network_is_stored_under_its_own_name_and_nnunet_names_keep_the_memory_plan(
        nifti_dataset, data_root, monkeypatch):
    location = locate_dataset(str(nifti_dataset), resolve_root())
    memory_only = planner.plan_dataset(location)
    monkeypatch.setattr(planner, "plan_time_budget", _fake_time_planning)
    planner.plan_dataset(location, time_budget_seconds=120)
    plans = load_plans(location.preprocessed)

    assert set(plans.configurations) == set(memory_only.configurations) | {"2d_fitted_2m"}
    for name in NNUNET_NAMES:  # no configuration named like an nnU-Net one holds anything else
        if name in memory_only.configurations:
            assert asdict(plans.configuration(name)) == asdict(memory_only.configuration(name))
    fitted = plans.configuration("2d_fitted_2m")
    assert fitted.name == "2d_fitted_2m"
    assert fitted.network.features_per_stage == [max(1, f // 2) for f in plans.configuration("2d").network
                                                 .features_per_stage]
    record = plans.time_budget
    assert record.chosen == "2d_fitted_2m"
    assert [(t.configuration, t.selected) for t in record.timings] == [
        ("2d", False), ("2d_fitted_2m", True), ("3d_fullres", True)]
    assert record.selected("2d_fitted_2m").iterations == 2400
