"""Planning for time: the configuration choice is monotone in the budget and the measurements round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import UserError
from autounet.planning.plans import Plans
from autounet.planning.plan_for_time import (MIN_3D_ITERATIONS, TARGET_ITERATIONS, ConfigurationTiming,
                                           TimeBudgetPlan, choose_configuration, halved_patches,
                                           iterations_bought, plan_time_budget)
from autounet.planning.time_budget import MIN_TRAINING_ITERATIONS, parse_duration
from autounet.measure.batch_search import candidate_batches
from tests.training.helpers import network_config


def _timings(budget: float, per_iteration: dict[str, float]) -> list[ConfigurationTiming]:
    return [ConfigurationTiming(name, seconds, seconds / 3, iterations_bought(budget, seconds), 2)
            for name, seconds in per_iteration.items()]


@pytest.mark.parametrize("speeds", [{"2d": 0.05, "3d_fullres": 0.8}, {"2d": 0.3, "3d_fullres": 0.3},
                                    {"2d": 1.0, "3d_fullres": 5.5}, {"2d": 0.01, "3d_fullres": 0.02}])
def test_choice_is_monotone_in_the_budget(speeds):
    budgets = [b * 10.0 for b in range(1, 3000, 7)]
    chosen = []
    for budget in budgets:
        try:
            chosen.append(choose_configuration(_timings(budget, speeds)))
        except UserError:
            assert not chosen, "a larger budget may never become too small"
    assert chosen, "some budget must be enough"
    first_3d = chosen.index("3d_fullres") if "3d_fullres" in chosen else len(chosen)
    assert set(chosen[:first_3d]) <= {"2d"} and set(chosen[first_3d:]) <= {"3d_fullres"}
    if "3d_fullres" in chosen:
        budget_3d = budgets[len(budgets) - len(chosen) + first_3d]
        assert iterations_bought(budget_3d, speeds["3d_fullres"]) >= MIN_3D_ITERATIONS


def test_a_single_candidate_is_chosen_when_it_buys_enough():
    assert choose_configuration(_timings(600, {"3d_fullres": 1.0})) == "3d_fullres"
    assert choose_configuration(_timings(600, {"2d": 1.0})) == "2d"
    with pytest.raises(UserError, match=f"fewer than {MIN_TRAINING_ITERATIONS} training iterations"):
        choose_configuration(_timings(5, {"2d": 1.0, "3d_fullres": 2.0}))


def test_too_small_budget_suggests_one_that_buys_enough_never_zero():
    for seconds_per_iteration in (0.001, 0.01, 1.0):
        with pytest.raises(UserError) as error:
            choose_configuration(_timings(0.01, {"2d": seconds_per_iteration}))
        suggested = parse_duration(str(error.value).split("--budget ")[1].split(" ")[0])
        assert suggested >= 1
        assert choose_configuration(_timings(suggested, {"2d": seconds_per_iteration})) == "2d"


def test_time_budget_plan_round_trips_in_plans(tmp_path):
    from tests.training.helpers import make_training_root
    from autounet.planning.plans import load_plans, save_plans

    location = make_training_root(tmp_path)
    plans = load_plans(location.preprocessed)
    plans.time_budget = TimeBudgetPlan(1800.0, "cpu", _timings(1800, {"2d": 0.1, "3d_fullres": 0.9}), "3d_fullres")
    plans.time_budget.timings[0].batch_seconds = {2: 0.1, 4: 0.3}
    save_plans(plans, location.preprocessed)
    again = load_plans(location.preprocessed)
    assert isinstance(again, Plans) and again.time_budget == plans.time_budget
    assert again.time_budget.timings[0].batch_seconds == {2: 0.1, 4: 0.3}  # int keys again, not JSON's strings
    described = again.time_budget.describe()
    assert "3d_fullres batch 2 0.900 s/iteration -> 1600 iterations" in described
    assert "2d batch 2 (batches timed: 2 -> 50 ms/sample, 4 -> 75 ms/sample) 0.100 s/iteration" in described


def test_plan_time_budget_measures_real_iterations(tmp_path):
    from tests.training.helpers import make_training_root
    from autounet.planning.plans import load_plans

    plans = load_plans(make_training_root(tmp_path).preprocessed)
    three_d = plans.configurations["3d_fullres"]
    two_d = type(three_d)(**{**three_d.__dict__, "name": "2d", "patch_size": [8, 8],
                             "network": network_config(2, three_d.network.num_classes)})
    planned, fitted = plan_time_budget({"2d": two_d, "3d_fullres": three_d}, 60.0, "cpu")
    assert [t.configuration for t in planned.timings if t.selected] == ["2d", "3d_fullres"]
    for timing in planned.timings:
        assert 0 < timing.seconds_per_iteration < 30
        assert timing.seconds_per_forward > 0 if timing.selected else timing.seconds_per_forward == 0
        assert timing.iterations == iterations_bought(60.0, timing.seconds_per_iteration)
        assert 1 <= timing.batch_size
    for name, plan in fitted.items():
        selected = planned.selected(name)
        assert selected.patch_size == plan.patch_size and selected.batch_size <= plan.batch_size
        # the batch search's timings are kept, and the batch trained is one of them
        assert selected.batch_size in selected.batch_seconds
        assert list(selected.batch_seconds) == candidate_batches(plan.batch_size)[:len(selected.batch_seconds)]
        assert all(seconds > 0 for seconds in selected.batch_seconds.values())
        assert selected.features_per_stage == plan.network.features_per_stage
    # the choice follows the rule, with the patches the fitting halved (which depends on this machine's speed)
    shrunk = halved_patches({"2d": two_d, "3d_fullres": three_d}, fitted)
    assert planned.chosen == choose_configuration([t for t in planned.timings if t.selected], shrunk)


def _fake_timer(seconds_by_patch: dict[int, float]):
    """Stands in for the measurement: seconds per iteration by the variant's first patch edge and width."""
    def timer(plan, budget_seconds, device, batch=None, deadline=None):
        seconds = seconds_by_patch[(plan.patch_size[0], plan.network.features_per_stage[0])]
        return ConfigurationTiming(plan.name, seconds, seconds / 3, iterations_bought(budget_seconds, seconds),
                                   batch or 2, list(plan.patch_size), list(plan.network.features_per_stage),
                                   selected=False)
    return timer


ISBI_LIKE_SECONDS = {(512, 32): 6.0, (512, 16): 3.0, (256, 16): 0.7, (128, 16): 0.3}


def test_fit_for_time_stops_at_the_first_variant_that_buys_enough(monkeypatch):
    from autounet.planning import plan_for_time
    from autounet.planning.configurations import plan_configurations
    from tests.planning.fingerprints import image_2d

    plan = plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)["2d"]
    monkeypatch.setattr(plan_for_time, "time_configuration", _fake_timer(ISBI_LIKE_SECONDS))
    monkeypatch.setattr(plan_for_time, "quick_timing", _fake_timer(ISBI_LIKE_SECONDS))
    chosen_sizes = []
    for budget in [60.0 * m for m in (1, 5, 10, 30, 60, 120, 600, 6000)]:
        timings = []
        fitted = plan_for_time.fit_for_time(plan, budget, "cpu", timings)
        assert [t.selected for t in timings] == [False] * (len(timings) - 1) + [True]
        assert fitted.patch_size == timings[-1].patch_size
        assert all(t.iterations < TARGET_ITERATIONS for t in timings[:-1])
        assert timings[-1].iterations >= TARGET_ITERATIONS or len(timings) == 4
        chosen_sizes.append(np.prod(fitted.patch_size) * fitted.network.features_per_stage[0])
    # more time never buys a smaller network, and a long enough budget keeps the memory plan
    assert chosen_sizes == sorted(chosen_sizes) and fitted is plan


def test_a_3d_network_with_a_halved_patch_is_not_preferred_to_2d():
    timings = _timings(1800, {"2d": 0.07, "3d_fullres": 0.03})  # both buy far more than MIN_3D_ITERATIONS
    assert choose_configuration(timings) == "3d_fullres"
    assert choose_configuration(timings, frozenset({"3d_fullres"})) == "2d"
    assert choose_configuration(_timings(1800, {"3d_fullres": 0.03}), frozenset({"3d_fullres"})) == "3d_fullres"


def _use_work_proportional_timer(monkeypatch, seconds_per_cost: float) -> list:
    """Stands in for both measurements with seconds per iteration ``seconds_per_cost`` times the variant's work per
    sample (:func:`~autounet.network.cost.sample_cost`); returns the list the timed variants are appended to."""
    from autounet.network.cost import sample_cost
    from autounet.planning import plan_for_time

    timed = []

    def timer(variant, budget_seconds, device, batch=None, deadline=None):
        timed.append(variant)
        seconds = seconds_per_cost * sample_cost(variant.network, variant.patch_size)
        return ConfigurationTiming(variant.name, seconds, seconds / 3, iterations_bought(budget_seconds, seconds),
                                   2, list(variant.patch_size), list(variant.network.features_per_stage),
                                   selected=False)

    monkeypatch.setattr(plan_for_time, "time_configuration", timer)
    monkeypatch.setattr(plan_for_time, "quick_timing", timer)
    return timed


def test_networks_predicted_far_too_slow_are_rejected_untimed(monkeypatch):
    from autounet.network.cost import sample_cost
    from autounet.planning import plan_for_time
    from autounet.planning.configurations import plan_configurations
    from autounet.planning.variants import cheaper_variants
    from tests.planning.fingerprints import image_2d

    plan = plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)["2d"]
    ladder = cheaper_variants(plan)
    cheapest_cost = sample_cost(ladder[-1].network, ladder[-1].patch_size)
    timed = _use_work_proportional_timer(monkeypatch, 0.3 / cheapest_cost)
    timings = []
    fitted = plan_for_time.fit_for_time(plan, 1800.0, "cpu", timings)
    estimated = [t for t in timings if t.estimated]
    assert estimated and all(t.iterations < plan_for_time.SKIP_SHARE * TARGET_ITERATIONS for t in estimated)
    assert all(t.seconds_per_forward == 0 and not t.selected for t in estimated)
    # the predictions are exact for a timer proportional to the work, and no rejected network was timed
    for t in estimated:
        variant = next(v for v in ladder if v.patch_size == t.patch_size
                       and v.network.features_per_stage == t.features_per_stage)
        assert t.seconds_per_iteration == pytest.approx(
            0.3 * sample_cost(variant.network, variant.patch_size) / cheapest_cost)
        assert all((t.patch_size, t.features_per_stage) != (v.patch_size, v.network.features_per_stage)
                   for v in timed)
    assert timings[-1].selected and not timings[-1].estimated and fitted.patch_size == timings[-1].patch_size
    assert "about" in TimeBudgetPlan(1800.0, "cpu", timings, "2d").describe()


@pytest.mark.parametrize("budget_minutes", [10, 30, 120, 1440])
def test_a_long_budget_still_takes_the_coarsest_grid_the_labels_survive(monkeypatch, budget_minutes):
    """PH2 at 2 hours: full resolution bought enough iterations but scored below the 4x grid at 30 minutes."""
    from autounet.network.cost import sample_cost
    from autounet.planning import plan_for_time
    from autounet.planning.configurations import plan_configurations
    from autounet.planning.variants import cheaper_variants, grid_factor
    from tests.planning.fingerprints import image_2d

    plan = plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)["2d"]
    ph2_like = {2: 0.999, 4: 0.996}.get
    ladder = cheaper_variants(plan, ph2_like)
    assert grid_factor(plan, ladder[-1]) == 4 and grid_factor(plan, ladder[1]) == 1
    timed = _use_work_proportional_timer(monkeypatch, 0.01 / sample_cost(plan.network, plan.patch_size))
    timings = []
    fitted = plan_for_time.fit_for_time(plan, budget_minutes * 60.0, "cpu", timings, ph2_like)
    # every rung buys enough here; the finer grids are passed over untimed
    assert all(t.iterations >= TARGET_ITERATIONS for t in timings)
    assert fitted.spacing == ladder[-1].spacing and timings[-1].selected
    assert all(variant.spacing == ladder[-1].spacing for variant in timed)
    assert [t.estimated for t in timings] == [True] * (len(ladder) - 1) + [False]


def test_an_exhausted_measuring_allowance_times_only_the_cheapest_network(monkeypatch):
    """run --budget counts planning inside its budget: beyond the allowance, predictions stand in for timings."""
    from autounet.network.cost import sample_cost
    from autounet.planning import plan_for_time
    from autounet.planning.configurations import plan_configurations
    from autounet.planning.timing_allowance import TimingAllowance
    from autounet.planning.variants import cheaper_variants
    from tests.planning.fingerprints import image_2d

    plan = plan_configurations(image_2d(), num_classes=2, budget_gb=8.0)["2d"]
    ladder = cheaper_variants(plan)
    cheapest_cost = sample_cost(ladder[-1].network, ladder[-1].patch_size)
    timed = _use_work_proportional_timer(monkeypatch, 0.01 / cheapest_cost)
    unlimited, limited = [], []
    fitted = plan_for_time.fit_for_time(plan, 1800.0, "cpu", unlimited)
    timed_unlimited = len(timed)
    timed.clear()
    fitted_limited = plan_for_time.fit_for_time(plan, 1800.0, "cpu", limited, allowance=TimingAllowance(0.0))
    assert timed_unlimited > 1 and len(timed) == 1 and timed[0].patch_size == ladder[-1].patch_size
    # the predictions are exact for a timer proportional to the work, so the choice is the same
    assert fitted_limited.patch_size == fitted.patch_size
    assert fitted_limited.network.features_per_stage == fitted.network.features_per_stage
    assert limited[-1].selected and (limited[-1].estimated or fitted_limited is ladder[-1])


def test_the_allowance_is_judged_on_the_predicted_time_of_measuring():
    from autounet.planning.timing_allowance import TimingAllowance, measuring_seconds

    assert measuring_seconds(0.5) < measuring_seconds(1.0) < measuring_seconds(10.0)
    allowance = TimingAllowance(10.0)
    assert allowance.affords(0.1) and not allowance.affords(5.0)
    assert allowance.affords(0.5, shared_by=1) and not allowance.affords(1.0, shared_by=2)
    assert TimingAllowance().left() == float("inf")
