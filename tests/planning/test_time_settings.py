"""Planning for time takes its thresholds as data (TimePlanningSettings) and records them in plans.json."""

from __future__ import annotations

from autounet.planning import plan_for_time
from autounet.planning.plan_for_time import choose_configuration, iterations_bought
from autounet.planning.time_plan import TIME_PLANNING, ConfigurationTiming, TimeBudgetPlan, TimePlanningSettings
from autounet.utils.serde import load_dataclass, to_json_value


def _timing(name: str, budget: float, seconds: float, settings: TimePlanningSettings) -> ConfigurationTiming:
    return ConfigurationTiming(name, seconds, seconds / 3, iterations_bought(budget, seconds, settings), 2)


def test_the_3d_threshold_is_the_settings():
    budget = 1800.0  # 3d_fullres at 0.5 s buys 2,880 iterations: below the default 5,000, above 2,000
    default = [_timing("2d", budget, 0.05, TIME_PLANNING), _timing("3d_fullres", budget, 0.5, TIME_PLANNING)]
    assert choose_configuration(default) == "2d"
    eager = TimePlanningSettings(min_3d_iterations=2000)
    assert choose_configuration(default, settings=eager) == "3d_fullres"
    assert iterations_bought(budget, 0.5, TimePlanningSettings(training_share=0.4)) == 1440


def test_the_plan_records_the_settings_and_old_plans_read_the_defaults():
    eager = TimePlanningSettings(min_3d_iterations=2000, element_weight=1000.0)
    plan = TimeBudgetPlan(600.0, "cpu", [], "2d", eager.rule(), eager)
    again = load_dataclass(TimeBudgetPlan, to_json_value(plan))
    assert again == plan and "at least 2000 at its planned patch" in again.rule
    old = to_json_value(plan)
    del old["settings"]
    assert load_dataclass(TimeBudgetPlan, old).settings == TIME_PLANNING
    assert plan_for_time.TARGET_ITERATIONS == TIME_PLANNING.target_iterations == 2000
