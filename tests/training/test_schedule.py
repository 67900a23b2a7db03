"""The schedules a trainer is given answer the same questions, a preset's fixed and a time budget's from its clock."""

from __future__ import annotations

import pytest

from autounet.measure.step_timing import StepSeconds
from autounet.measure.validation_cost import ValidationCost
from autounet.training import time_clock
from autounet.training.config import TrainingConfig
from autounet.training.optim import poly_lr
from autounet.training.schedule import PresetSchedule, TrainingSchedule
from autounet.training.time_clock import TimeBudgetClock
from autounet.training.time_schedule import TimeSchedule

QUESTIONS = [name for name in vars(TrainingSchedule) if not name.startswith("_")]


def test_a_preset_schedule_is_the_configs():
    config = TrainingConfig.from_budget("standard", epochs=4, iterations_per_epoch=3, val_iterations=2)
    schedule = PresetSchedule(config)
    assert (schedule.epochs, schedule.iterations_per_epoch, schedule.val_iterations) == (4, 3, 2)
    assert schedule.learning_rate(2) == poly_lr(config.learning_rate, 2, 4, config.poly_exponent)
    assert all(schedule.keep_training(i) for i in range(1, 4))
    schedule.epoch_ended(completed=True)
    assert schedule.epochs == 4 and schedule.recorded(config) is config


def test_a_time_schedule_follows_its_clock_and_records_it(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time_clock.time, "perf_counter", lambda: now[0])
    config = TrainingConfig.from_budget("10m")
    clock = TimeBudgetClock(600.0)
    clock.fit(StepSeconds(0.1, 0.03), 2, ValidationCost(0.01, 10, 2, 8))
    schedule = TimeSchedule(clock, config)
    planned = schedule.epochs
    assert schedule.learning_rate(1) == poly_lr(config.learning_rate, 1, planned, config.poly_exponent)
    recorded = schedule.recorded(config)
    assert (recorded.epochs, recorded.iterations_per_epoch, recorded.budget_timing) == \
        (planned, schedule.iterations_per_epoch, clock.timing)
    schedule.epoch_started()
    now[0] += 598.0  # less time is left than validation needs: the running epoch stops and is the last
    assert not schedule.keep_training(1)
    schedule.epoch_ended(completed=False)
    assert schedule.epochs == 1 and schedule.recorded(config).epochs == 1


@pytest.mark.parametrize("kind", [PresetSchedule, TimeSchedule])
def test_both_schedules_answer_every_question(kind):
    assert QUESTIONS and all(callable(getattr(kind, name, None)) or isinstance(getattr(kind, name), property)
                             for name in QUESTIONS)
