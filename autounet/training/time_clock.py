"""The clock that holds one fold's training, plus its final validation, to its time budget."""

from __future__ import annotations

import math
import statistics
import time

from autounet.measure.step_timing import StepSeconds
from autounet.measure.validation_cost import ValidationCost
from autounet.training.schedule_fit import (Schedule, TimeBudgetTiming, schedule_for_time, shortened_epochs,
                                           too_small_error)
from autounet.training.settings import TIME_SCHEDULE, TimeScheduleSettings


def schedule_within(budget: float, setup: float, steps: StepSeconds, batch_size: int, validation: ValidationCost,
                    settings: TimeScheduleSettings = TIME_SCHEDULE) -> tuple[bool, float, Schedule | None]:
    """Validation TTA or not, its estimated seconds, and the schedule that fits (None if none does)."""
    tta = validation.seconds(tta=True) <= settings.tta_max_share * budget
    validate = validation.seconds(tta)
    schedule = schedule_for_time(budget - setup - validate, steps.training_iteration, steps.forward * batch_size,
                                 settings.epoch_overhead_guess, settings)
    return tta, validate, schedule


def smallest_budget(budget: float, setup: float, steps: StepSeconds, batch_size: int, validation: ValidationCost,
                    settings: TimeScheduleSettings = TIME_SCHEDULE) -> float:
    """The smallest budget (in 5 % steps above ``budget``, whole seconds) that buys the minimum schedule."""
    while schedule_within(budget, setup, steps, batch_size, validation, settings)[2] is None:
        budget = float(math.ceil(budget * 1.05 + 1))
    return budget


class TimeBudgetClock:
    """Holds one fold's training (plus its final validation) to ``budget_seconds`` from ``started``.

    The schedule is fitted in three steps, each on better evidence: :meth:`fit` from timed iterations of a
    throwaway network; :meth:`iteration_done` after the first few real iterations (data workers, augmentation
    and the machine's load included: the epoch count is re-fitted both ways, while the learning rate is still
    at its start so the schedule stays exact); :meth:`epoch_done` after each epoch (only shorter). If the time
    left would not cover validation, the running epoch stops early and becomes the last.
    """

    def __init__(self, budget_seconds: float, started: float | None = None,
                 settings: TimeScheduleSettings = TIME_SCHEDULE):
        self.budget_seconds = budget_seconds
        self.settings = settings
        self.started = time.perf_counter() if started is None else started
        self.timing: TimeBudgetTiming | None = None
        self._batch = 0
        self._calibrated = False
        self._last_iteration_end = 0.0
        self._iteration_seconds: list[float] = []
        self._epoch_start: float | None = None
        self._epochs_done = 0
        self._epoch_seconds: list[float] = []

    def remaining(self) -> float:
        return self.budget_seconds - (time.perf_counter() - self.started)

    def fit(self, steps: StepSeconds, batch_size: int, validation: ValidationCost) -> TimeBudgetTiming:
        """Choose TTA and the schedule that fit the remaining time; raise UserError when none does."""
        import autounet.evaluation.folders  # noqa: F401 - imported now so validation's clock starts warm
        import autounet.inference.predictor  # noqa: F401

        self._batch = batch_size
        setup = time.perf_counter() - self.started
        tta, validate, schedule = schedule_within(self.budget_seconds, setup, steps, batch_size, validation,
                                                  self.settings)
        if schedule is None:
            raise too_small_error(self.budget_seconds, steps.training_iteration, setup + validate,
                                  smallest_budget(self.budget_seconds, setup, steps, batch_size, validation,
                                                  self.settings))
        self.timing = TimeBudgetTiming(self.budget_seconds, round(steps.training_iteration, 4),
                                       round(steps.forward, 4), round(validate, 1), tta,
                                       self.settings.epoch_overhead_guess, round(setup, 1), schedule.epochs,
                                       schedule.iterations_per_epoch, schedule.val_iterations)
        return self.timing

    def epoch_started(self) -> None:
        self._epoch_start = time.perf_counter()

    def iteration_done(self, iteration: int) -> bool:
        """After training iteration ``iteration`` (1-based) of an epoch: False when the epoch must stop now (after
        its last iteration: when its pseudo-Dice would not fit before the final validation)."""
        timing = self.timing
        assert timing is not None, "fit() first"
        now = time.perf_counter()
        if not self._calibrated:
            # the first real iteration also waits for the data workers to start: time the ones after it
            if iteration > 1:
                self._iteration_seconds.append(now - self._last_iteration_end)
            self._last_iteration_end = now
            last_calibrating = min(self.settings.calibration_iterations + 1, timing.iterations_per_epoch)
            if iteration == last_calibrating and iteration > 1:
                self._calibrate(statistics.median(self._iteration_seconds), iteration)
        needed = timing.validation_seconds
        if iteration >= timing.iterations_per_epoch:  # the epoch's pseudo-Dice follows: skipped when it would not fit
            needed += self._pseudo_dice_seconds(now, iteration)
        return self.remaining() > needed

    def _pseudo_dice_seconds(self, now: float, iteration: int) -> float:
        """The epoch's pseudo-Dice iterations and end-of-epoch overhead, at the speed this epoch ran so far (a
        machine that slowed down slows them too)."""
        timing = self.timing
        planned = timing.measured_seconds_per_iteration or timing.seconds_per_iteration
        observed = (now - self._epoch_start) / iteration if self._epoch_start is not None else planned
        slowdown = max(1.0, observed / planned) if planned > 0 else 1.0
        return (timing.val_iterations * timing.seconds_per_forward * self._batch * slowdown
                + timing.epoch_overhead_seconds)

    def _calibrate(self, seconds_per_iteration: float, iteration: int) -> None:
        """Re-fit the epoch count to the real seconds per iteration (either way: the rate is still at its start)."""
        timing = self.timing
        self._calibrated = True
        timing.measured_seconds_per_iteration = round(seconds_per_iteration, 4)
        per_val = timing.seconds_per_forward * self._batch
        epoch = (timing.iterations_per_epoch * seconds_per_iteration + timing.val_iterations * per_val
                 + timing.epoch_overhead_seconds)
        rest_of_this_epoch = epoch - iteration * seconds_per_iteration
        left = self.remaining() - timing.validation_seconds - rest_of_this_epoch
        timing.epochs = max(self._epochs_done + 1, self._epochs_done + 1 + int(left // epoch))

    def epoch_done(self, completed: bool) -> int:
        """After an epoch: the epoch total that still ends (with validation) within the budget.

        Epochs are projected at the median of the last few epochs' times (the first, which waits for the data
        workers to start, left out once there are others), so one slow epoch does not cut the schedule. While
        fewer than ``settings.refit_early_share`` of the epochs are done the total is re-fitted both ways (the rate has
        barely decayed); after that it shrinks to what fits, or, until ``settings.regrow_until_share`` of the epochs,
        grows by one epoch when the slowest recent epoch still leaves room for two more after the planned ones.
        """
        timing = self.timing
        assert timing is not None and self._epoch_start is not None, "fit() and epoch_started() first"
        self._epochs_done += 1
        epoch_seconds = time.perf_counter() - self._epoch_start
        self._epoch_seconds.append(epoch_seconds)
        if not self._calibrated:  # epochs of one iteration: calibrate on the whole epoch
            self._calibrated = True
            timing.measured_seconds_per_iteration = round(epoch_seconds / timing.iterations_per_epoch, 4)
        recent = (self._epoch_seconds[1:] or self._epoch_seconds)[-self.settings.recent_epochs:]
        typical = statistics.median(recent) * self.settings.epoch_safety
        left = self.remaining() - timing.validation_seconds
        done = self._epochs_done
        if not completed:
            kept = done
        elif done == 1 and self._iteration_seconds:
            kept = timing.epochs  # just re-fitted on this epoch's own iterations; its total waited for workers too
        else:
            kept = shortened_epochs(done, timing.epochs, left, typical)
            if done < self.settings.refit_early_share * timing.epochs and typical > 0:
                kept = max(kept, done + int(max(0.0, left) // typical))
        if (completed and kept == timing.epochs
                and self.settings.refit_early_share * kept <= done < self.settings.regrow_until_share * kept):
            # on schedule in mid-run: when even the slowest recent epoch leaves room for two more epochs after the
            # planned ones, add one (one at a time: the rate of a longer schedule is only slightly higher), so time
            # freed after a slow stretch is trained rather than left idle
            slowest = max(recent) * self.settings.epoch_safety
            if left - (kept - done) * slowest >= 2 * slowest:  # the added epoch and one more to spare
                kept += 1
        if completed and done < kept <= done + self.settings.last_epochs_caution:
            # the last epochs are projected at the slowest recent epoch: one slower than the median must not find
            # the next epoch unaffordable after it ran with the rate of a longer schedule
            kept = max(done + 1, shortened_epochs(done, kept, left, max(recent) * self.settings.epoch_safety))
        if kept == done and done < timing.epochs:
            timing.last_epoch_unplanned = True
        if kept < timing.epochs:
            timing.shortened_to.append(kept)
        elif kept > timing.epochs:
            timing.extended_to.append(kept)
        timing.epochs = kept
        return timing.epochs
