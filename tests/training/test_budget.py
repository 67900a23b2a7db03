"""Duration budgets: parsing, schedules that anneal to the end, and the clock that keeps a run within its budget."""

from __future__ import annotations

import random

import pytest

from autounet.errors import UserError
from autounet.measure import batch_search, step_timing
from autounet.measure.settings import TIMER
from autounet.measure.step_timing import StepSeconds
from autounet.measure.validation_cost import ValidationCost
from autounet.planning.time_budget import (MIN_TRAINING_ITERATIONS, format_duration, parse_duration,
                                           time_budget_seconds)
from autounet.training import time_clock
from autounet.training.schedule_fit import (MAX_ITERATIONS_PER_EPOCH, TimeBudgetTiming, fit_schedule,
                                            schedule_for_time, seconds_per_epoch, shortened_epochs)
from autounet.training.time_clock import TimeBudgetClock
from autounet.training.config import TrainingConfig
from autounet.training.optim import poly_lr
from autounet.utils.serde import load_dataclass, to_json_value


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("90s", 90), ("1h30m", 5400),
                                           ("1.5h", 5400), (" 10M ", 600), ("1m30s", 90)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, words", [("30", "without a unit"), ("30x", "unknown unit 'x'"),
                                         ("1h30", "without a unit"), ("", "not a duration"),
                                         ("abc", "not a duration"), ("0m", "zero"), ("30m-", "not a duration")])
def test_bad_durations_are_clear_errors(text, words):
    with pytest.raises(UserError, match=words):
        parse_duration(text)


def test_presets_are_not_durations():
    assert [time_budget_seconds(name) for name in ("quick", "standard", "full", None)] == [None] * 4
    assert time_budget_seconds("45m") == 2700
    assert format_duration(parse_duration("1h30m")) == "1h30m"


def _learning_rates(epochs: int) -> list[float]:
    return [poly_lr(0.01, epoch, epochs, 0.9) for epoch in range(epochs)]


@pytest.mark.parametrize("total", [*range(1, 400), 997, 1234, 12_345, 62_500, 250_001, 1_000_003])
def test_schedule_anneals_to_the_end_for_any_iteration_count(total):
    schedule = fit_schedule(total)
    assert 1 <= schedule.iterations <= total
    assert total - schedule.iterations < min(MAX_ITERATIONS_PER_EPOCH, max(1, total // 40))
    assert 1 <= schedule.iterations_per_epoch <= MAX_ITERATIONS_PER_EPOCH
    rates = _learning_rates(schedule.epochs)
    assert rates[0] == 0.01
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))
    # the epoch after the last one would have rate 0: the last epoch trained is the schedule's last step
    assert poly_lr(0.01, schedule.epochs, schedule.epochs, 0.9) == 0.0
    assert rates[-1] == pytest.approx(0.01 * (1 / schedule.epochs) ** 0.9)


@pytest.mark.parametrize("total, cap", [(1000, 3), (100_000, 40), (7, 2), (50_000, 1)])
def test_schedule_respects_an_epoch_cap(total, cap):
    schedule = fit_schedule(total, cap)
    assert schedule.epochs <= cap and schedule.iterations <= total


def test_schedule_for_time_fits_its_time():
    for seconds in (5, 30, 60, 600, 1800, 7200):
        for per_iteration in (0.01, 0.2, 1.5):
            schedule = schedule_for_time(seconds, per_iteration, per_iteration / 3, 0.5)
            if schedule is None:
                assert seconds / per_iteration < MIN_TRAINING_ITERATIONS * 1.5
                continue
            assert schedule.iterations >= MIN_TRAINING_ITERATIONS
            cost = schedule.epochs * seconds_per_epoch(schedule, per_iteration, per_iteration / 3, 0.5)
            assert cost <= seconds


def test_shortened_epochs_never_lengthens_and_never_undoes_done_epochs():
    assert shortened_epochs(3, 10, 1000.0, 5.0) == 10
    assert shortened_epochs(3, 10, 12.0, 5.0) == 5
    assert shortened_epochs(3, 10, -4.0, 5.0) == 3
    assert shortened_epochs(0, 1, 0.0, 5.0) == 0


def test_config_from_a_duration_round_trips_with_its_timing():
    config = TrainingConfig.from_budget("1h30m", learning_rate=0.02)
    assert config.time_budget_seconds == 5400 and config.budget == "1h30m" and config.learning_rate == 0.02
    timing = TimeBudgetTiming(5400, 0.5, 0.05, 30.0, True, 0.5, 4.0, 40, 200, 40, 1, 0.6, [38])
    config = config.with_overrides(budget_timing=timing)
    again = load_dataclass(TrainingConfig, to_json_value(config))
    assert again == config and again.budget_timing.shortened_to == [38]
    with pytest.raises(UserError, match="without a unit"):
        TrainingConfig.from_budget("30")


class FakeTime:
    """A controllable perf_counter for the budget clock."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def _simulate(monkeypatch, budget: float, measured: float, real: float, slow_after_epoch: int | None = None,
              outlier_epoch: int | None = None, jitter: float = 0.0, seed: int = 0, slow_epochs: range = range(0)):
    """Run the clock through a whole simulated training whose iterations take ``real`` seconds.

    ``jitter`` varies each epoch's speed at random by up to that share. Returns the clock, the seconds used, the
    epochs trained and the epoch total in force while each epoch trained.
    """
    rng = random.Random(seed)
    fake = FakeTime()
    monkeypatch.setattr(time_clock.time, "perf_counter", fake.perf_counter)
    clock = TimeBudgetClock(budget)
    fake.now += 2.0  # setup
    timing = clock.fit(StepSeconds(measured, measured / 3), 2, ValidationCost(measured / 3, 40, 3, 8))
    epoch, epochs_seen = 0, []
    while epoch < timing.epochs:
        clock.epoch_started()
        per_iteration = real * (3 if slow_after_epoch is not None and epoch >= slow_after_epoch else 1)
        per_iteration *= 1.6 if epoch == outlier_epoch else 1
        per_iteration *= 1.5 if epoch in slow_epochs else 1
        per_iteration *= rng.uniform(1 - jitter, 1 + jitter)
        completed = True
        for iteration in range(timing.iterations_per_epoch):
            fake.now += per_iteration
            if not clock.iteration_done(iteration + 1):
                completed = False
                break
        if completed:
            fake.now += timing.val_iterations * per_iteration / 3 * 2 + 0.5
        epochs_seen.append(timing.epochs)
        epoch += 1
        clock.epoch_done(completed)
    return clock, fake.now - clock.started, epoch, epochs_seen


@pytest.mark.parametrize("real_factor", [0.5, 1.0, 2.0, 4.0])
def test_clock_keeps_training_within_the_budget(monkeypatch, real_factor):
    clock, used, epochs, _ = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2 * real_factor)
    timing = clock.timing
    assert epochs == timing.epochs  # the run trains exactly the (re-fitted) schedule's epochs
    assert used + timing.validation_seconds <= 600.0
    assert timing.measured_seconds_per_iteration == pytest.approx(0.2 * real_factor)
    if real_factor <= 1.0:
        assert used > 0.6 * 600  # and does not waste most of it


@pytest.mark.parametrize("outlier_epoch", [0, 1, 3])
def test_one_slow_epoch_does_not_cut_the_schedule(monkeypatch, outlier_epoch):
    clean, clean_used, _, _ = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2)
    clock, used, epochs, _ = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2, outlier_epoch=outlier_epoch)
    assert epochs == clock.timing.epochs and used + clock.timing.validation_seconds <= 600.0
    assert epochs >= clean.timing.epochs - 1  # at most the outlier's own extra time is lost
    assert used > 0.9 * clean_used


def test_early_epochs_faster_than_measured_grow_the_schedule(monkeypatch):
    clock, used, epochs, _ = _simulate(monkeypatch, budget=600.0, measured=0.4, real=0.2)
    assert epochs == clock.timing.epochs and used + clock.timing.validation_seconds <= 600.0
    assert used > 0.8 * 600  # the time the slow measurement set aside is trained, not left idle


def test_time_freed_after_a_slow_stretch_is_trained(monkeypatch):
    """The machine runs 1.5x slower for epochs 15-24 (another job), then as fast as measured again: the epochs cut
    during the slow stretch come back one by one instead of leaving the end of the budget idle."""
    clock, used, epochs, totals = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2,
                                            slow_epochs=range(15, 25))
    timing = clock.timing
    assert timing.shortened_to and timing.extended_to and epochs == timing.epochs
    assert used + timing.validation_seconds <= 600.0
    assert used + timing.validation_seconds > 0.93 * 600.0
    assert not timing.last_epoch_unplanned


def test_clock_cuts_the_schedule_when_the_machine_slows_down(monkeypatch):
    clock, used, epochs, _ = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2, slow_after_epoch=5)
    assert clock.timing.shortened_to and epochs == clock.timing.epochs
    assert used + clock.timing.validation_seconds <= 600.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("slow_after_epoch", [None, 30, 45, 49])
def test_the_rate_anneals_to_the_end_unless_the_run_says_the_deadline_came_early(monkeypatch, seed,
                                                                                   slow_after_epoch):
    clock, used, epochs, totals = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2, jitter=0.3,
                                            seed=seed, slow_after_epoch=slow_after_epoch)
    timing = clock.timing
    assert used + timing.validation_seconds <= 600.0 and epochs == timing.epochs
    # the rate is set at each epoch's start from the total then in force
    last_rate = poly_lr(1.0, epochs - 1, totals[-1], 0.9)
    if timing.last_epoch_unplanned:
        assert totals[-1] > epochs  # flagged only when the last epoch ran as part of a longer schedule
    else:
        assert last_rate == pytest.approx(poly_lr(1.0, epochs - 1, epochs, 0.9))


def test_a_machine_slowing_threefold_near_the_end_stops_early_and_says_so(monkeypatch):
    clock, used, epochs, totals = _simulate(monkeypatch, budget=600.0, measured=0.2, real=0.2, outlier_epoch=40,
                                            slow_after_epoch=46)
    assert clock.timing.last_epoch_unplanned and totals[-1] > epochs
    assert used + clock.timing.validation_seconds <= 600.0


def test_validation_tta_is_dropped_when_it_would_eat_the_budget(monkeypatch):
    monkeypatch.setattr(time_clock.time, "perf_counter", FakeTime().perf_counter)
    cost = ValidationCost(0.05, 400, 10, 8)
    assert cost.seconds(tta=True) > cost.seconds(tta=False)
    assert TimeBudgetClock(36_000).fit(StepSeconds(0.1, 0.03), 2, cost).validation_tta
    short = TimeBudgetClock(600).fit(StepSeconds(0.1, 0.03), 2, cost)
    assert not short.validation_tta and short.validation_seconds == cost.seconds(tta=False)


def test_too_small_budget_says_what_one_iteration_costs_and_what_works(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(time_clock.time, "perf_counter", fake.perf_counter)
    with pytest.raises(UserError, match=r"too small: one training iteration takes 1\.50 s") as error:
        TimeBudgetClock(10.0).fit(StepSeconds(1.5, 0.5), 2, ValidationCost(0.5, 10, 2, 8))
    suggested = parse_duration(str(error.value).split("--budget ")[1].split(" ")[0])
    assert TimeBudgetClock(suggested).fit(StepSeconds(1.5, 0.5), 2, ValidationCost(0.5, 10, 2, 8)).epochs >= 1


def test_candidate_batches_double_up_to_the_plans_batch():
    assert batch_search.candidate_batches(9) == [2, 4, 8, 9]
    assert batch_search.candidate_batches(16) == [2, 4, 8, 16]
    assert batch_search.candidate_batches(2) == [2]
    assert batch_search.candidate_batches(1) == [1]


def test_plateau_batch_is_the_smallest_at_full_samples_per_second():
    timing = batch_search.BatchTiming
    # measured on the development CPU for Hippocampus 2d: 25.6, 18.2, 16.2, 22.3 ms per sample
    measured = [timing(8, 0.205), timing(16, 0.291), timing(32, 0.518), timing(64, 1.429)]
    assert batch_search.plateau_batch(measured) == 16
    # a GPU-like curve keeps getting cheaper per sample: the largest batch wins
    assert batch_search.plateau_batch([timing(2, 0.1), timing(4, 0.1), timing(8, 0.1)]) == 8


def test_time_batch_size_stops_past_the_plateau(monkeypatch):
    per_sample = {2: 0.05, 4: 0.03, 8: 0.02, 16: 0.021, 32: 0.04, 64: 0.04, 100: 0.04}
    asked = []

    def fake_measure(network, patch, batch, device, fast_cpu=True, window_seconds=1.0, deadline=None):
        asked.append(batch)
        return StepSeconds(per_sample[batch] * batch, 0.01)

    monkeypatch.setattr(step_timing, "measure_step_seconds", fake_measure)
    batch, timings = batch_search.time_batch_size(None, [8, 8], 100, None)
    assert batch == 8
    assert asked == [2, 4, 8, 16, 32]  # 32 is past the plateau: 64 and 100 are not measured
    assert [t.batch_size for t in timings] == asked
    asked.clear()  # past its deadline the search tries no larger batch
    assert batch_search.time_batch_size(None, [8, 8], 100, None, deadline=0.0) == (2, [batch_search.BatchTiming(2, 0.1)])
    assert asked == [2]


def test_timing_past_its_deadline_stops_after_one_timed_step():
    import time

    import torch

    from autounet.measure.step_timing import settled_median

    calls = []
    settled_median(lambda: calls.append(1), torch.device("cpu"), window_seconds=10.0, deadline=time.perf_counter())
    assert len(calls) == 2  # the warm-up and one timed step


def test_short_schedules_train_with_adamw_and_long_presets_with_nnunets_sgd():
    import torch

    from autounet.training.optim import make_optimizer

    timed = TrainingConfig.from_budget("30m")
    assert (timed.optimizer, timed.learning_rate) == ("adamw", 1e-3)
    assert (TrainingConfig.from_budget("full").optimizer, TrainingConfig.from_budget("full").learning_rate) == \
        ("sgd", 0.01)
    # naming an optimiser takes its own default rate unless a rate is given too
    assert TrainingConfig.from_budget("30m", optimizer="sgd").learning_rate == 0.01
    assert TrainingConfig.from_budget("standard", optimizer="adamw", learning_rate=0.002).learning_rate == 0.002
    assert TrainingConfig.from_budget("quick").optimizer == "adamw"  # 100 iterations: a short schedule
    net = torch.nn.Linear(2, 2)
    assert isinstance(make_optimizer(net, timed), torch.optim.AdamW)
    assert isinstance(make_optimizer(net, TrainingConfig.from_budget("standard")), torch.optim.SGD)
    with pytest.raises(UserError, match="optimizer must be sgd or adamw"):
        TrainingConfig.from_budget("quick", optimizer="adam").check()


@pytest.mark.parametrize("step_seconds, calls", [(3.0, 1 + TIMER.slow_timed_steps),
                                                 (0.3, 1 + TIMER.min_timed_steps)])
def test_slow_steps_are_timed_fewer_times(monkeypatch, step_seconds, calls):
    import torch

    fake = FakeTime()
    monkeypatch.setattr(step_timing.time, "perf_counter", fake.perf_counter)
    made = []

    def step():
        made.append(1)
        fake.now += step_seconds

    assert step_timing.settled_median(step, torch.device("cpu"), window_seconds=1.0) == pytest.approx(step_seconds)
    assert len(made) == calls
