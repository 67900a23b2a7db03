"""A time budget's schedule: measure this machine, fit epochs x iterations to the time left, and keep to it.

:func:`start_time_schedule` chooses the batch, times the step and the final validation, and fits the schedule;
the :class:`TimeSchedule` it returns answers the trainer's questions from the :class:`TimeBudgetClock`.
"""

from __future__ import annotations

import time

import torch

from autounet.measure.batch_search import time_batch_size
from autounet.measure.step_timing import measure_step_seconds
from autounet.measure.threads import fastest_threads
from autounet.planning.time_budget import format_duration
from autounet.preprocessing.store import CaseStore
from autounet.training.config import TrainingConfig
from autounet.training.optim import poly_lr
from autounet.training.setup import FoldSetup
from autounet.training.time_clock import TimeBudgetClock
from autounet.training.validation_timing import measure_validation_cost
from autounet.utils.progress import console


class TimeSchedule:
    """The schedule of a fitted :class:`TimeBudgetClock`: its epoch total changes as the clock re-fits it."""

    def __init__(self, clock: TimeBudgetClock, config: TrainingConfig):
        assert clock.timing is not None, "fit the clock first"
        self.clock, self._learning_rate, self._exponent = clock, config.learning_rate, config.poly_exponent

    @property
    def epochs(self) -> int:
        return self.clock.timing.epochs

    @property
    def iterations_per_epoch(self) -> int:
        return self.clock.timing.iterations_per_epoch

    @property
    def val_iterations(self) -> int:
        return self.clock.timing.val_iterations

    def learning_rate(self, epoch: int) -> float:
        return poly_lr(self._learning_rate, epoch, self.epochs, self._exponent)

    def epoch_started(self) -> None:
        self.clock.epoch_started()

    def keep_training(self, iteration: int) -> bool:
        return self.clock.iteration_done(iteration)

    def epoch_ended(self, completed: bool) -> None:
        """Take the clock's epoch total (re-fitted after the first real iterations, or cut short) and say so."""
        planned = self.epochs
        epochs = self.clock.epoch_done(completed)
        if epochs != planned:
            timing = self.clock.timing
            early = (" The machine slowed down too late to re-fit the rate: the run stops before its rate has "
                     "annealed fully." if timing.last_epoch_unplanned else "")
            console.print(f"budget: {timing.measured_seconds_per_iteration:.3f} s per real iteration here; the "
                          f"schedule now ends after {epochs} epochs (was {planned}) so that training and validation "
                          f"fit the budget.{early}", highlight=False)

    def recorded(self, config: TrainingConfig) -> TrainingConfig:
        timing = self.clock.timing
        return config.with_overrides(epochs=timing.epochs, iterations_per_epoch=timing.iterations_per_epoch,
                                     val_iterations=timing.val_iterations, validation_tta=timing.validation_tta,
                                     budget_timing=timing)


def time_budget_batch(setup: FoldSetup, config: TrainingConfig, device: torch.device, fast_cpu: bool) -> int:
    """A time budget's batch when none was given: the one ``plan --budget`` timed, else measured now."""
    plan, timed_plan = setup.plan, setup.plans.time_budget
    timed = timed_plan.selected(plan.name) if timed_plan is not None else None
    if timed is not None and 0 < timed.batch_size <= plan.batch_size:
        batch = timed.batch_size
        source = f"as `autounet plan --budget` {'predicted' if timed.estimated else 'timed'} it"
    else:
        batch, timings = time_batch_size(plan.network, list(plan.patch_size), plan.batch_size, device,
                                         fast_cpu=fast_cpu, settings=config.batch_search)
        source = "timed: " + ", ".join(f"{t.batch_size} -> {1000 * t.seconds_per_sample:.1f} ms/sample"
                                       for t in timings)
    planned_for = config.time_budget_seconds if config.run_time_budget_seconds is None else None
    if timed_plan is None or (planned_for is not None and round(timed_plan.budget_seconds) != round(planned_for)):
        console.print(f"budget: the network is the one planned for memory; `autounet plan {setup.plans.dataset_name} "
                      f"--budget {format_duration(config.time_budget_seconds or 0)}` fits it to this budget "
                      f"(narrower or smaller patches when the planned one buys too few iterations).",
                      highlight=False)
    console.print(f"budget: batch {batch} (the plan's {plan.batch_size} is sized for memory; the smallest "
                  f"batch at full samples per second buys the most updates; {source})", highlight=False)
    return batch


def start_time_schedule(setup: FoldSetup, config: TrainingConfig, device: torch.device,
                        started: float) -> tuple[TrainingConfig, TimeSchedule]:
    """Choose the batch (unless the config has one), measure this machine at it, fit the schedule to the time
    budget left since ``started`` (a ``time.perf_counter()``) and print it with what the setup went to; the config
    as it trains, and its schedule."""
    plan = setup.plan
    fast_cpu = config.cpu_fast_kernels and device.type == "cpu"
    parts = {"loading": time.perf_counter() - started}
    mark = time.perf_counter()
    if config.batch_size is None:
        config = config.with_overrides(batch_size=time_budget_batch(setup, config, device, fast_cpu))
        parts["choosing the batch"], mark = time.perf_counter() - mark, time.perf_counter()
    clock = TimeBudgetClock(config.time_budget_seconds, started, config.time_schedule)
    steps = fastest_threads(lambda: measure_step_seconds(plan.network, list(plan.patch_size), config.batch_size,
                                                         device, fast_cpu=fast_cpu), device)
    parts["timing steps"], mark = time.perf_counter() - mark, time.perf_counter()
    validation = measure_validation_cost(plan, CaseStore(setup.store_folder), list(setup.split.val), device)
    parts["timing validation"] = time.perf_counter() - mark
    timing = clock.fit(steps, config.batch_size, validation)
    timing.threads = torch.get_num_threads() if device.type == "cpu" else None
    timing.setup_parts = {name: round(seconds, 1) for name, seconds in parts.items()}
    console.print(timing.describe(), highlight=False)
    schedule = TimeSchedule(clock, config)
    return schedule.recorded(config), schedule
