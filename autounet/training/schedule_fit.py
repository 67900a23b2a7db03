"""Fitting a training schedule to a time budget: epochs x iterations that the measured seconds buy.

The maths here is pure (no torch, no clock); :mod:`.time_clock` applies it while training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autounet.planning.time_budget import MIN_TRAINING_ITERATIONS, TimeBudgetTooSmallError, format_duration
from autounet.training.settings import TIME_SCHEDULE, TimeScheduleSettings

MAX_ITERATIONS_PER_EPOCH = TIME_SCHEDULE.max_iterations_per_epoch
"""The default :class:`~autounet.training.settings.TimeScheduleSettings`' epoch length, by name."""


@dataclass(frozen=True)
class Schedule:
    """Epochs x iterations per epoch (plus pseudo-Dice validation iterations) for a number of iterations."""

    epochs: int
    iterations_per_epoch: int
    val_iterations: int

    @property
    def iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch


def fit_schedule(total_iterations: int, max_epochs: int | None = None,
                 settings: TimeScheduleSettings = TIME_SCHEDULE) -> Schedule:
    """Split ``total_iterations`` into epochs (at most ``max_epochs``) of at most 250 iterations (by default).

    Never uses more than ``total_iterations``; the polynomial learning rate
    is set per epoch from ``epoch / epochs``, so whatever the split, the last
    epoch trained is the schedule's last and the rate anneals to its end.

    Example:
        >>> fit_schedule(300), fit_schedule(100_000).epochs
        (Schedule(epochs=50, iterations_per_epoch=6, val_iterations=1), 400)
    """
    if total_iterations < 1:
        raise ValueError("a schedule needs at least one iteration")
    cap = max(1, max_epochs) if max_epochs is not None else None
    longest = settings.max_iterations_per_epoch
    per_epoch = min(longest, max(1, total_iterations // settings.target_epochs))
    if cap is not None and total_iterations // per_epoch > cap:
        per_epoch = min(longest, math.ceil(total_iterations / cap))
    epochs = max(1, total_iterations // per_epoch)
    if cap is not None:
        epochs = min(epochs, cap)
    return Schedule(epochs, per_epoch, max(1, round(per_epoch * settings.validation_share)))


@dataclass
class TimeBudgetTiming:
    """What a time budget measured on this machine and the schedule it chose (saved in training_config.json)."""

    budget_seconds: float
    seconds_per_iteration: float
    """Median wall time of one training iteration at the plan's batch and patch."""
    seconds_per_forward: float
    """Median wall time of one forward pass of one patch in inference mode."""
    validation_seconds: float
    """Estimated time to predict and score the fold's validation cases at the end."""
    validation_tta: bool
    epoch_overhead_seconds: float
    setup_seconds: float
    """Time already spent before the schedule was fitted (loading, building the network, measuring)."""
    epochs: int
    iterations_per_epoch: int
    val_iterations: int
    threads: int | None = None
    """CPU threads chosen for this run (the faster of torch's default and one, as measured)."""
    measured_seconds_per_iteration: float | None = None
    """Seconds per iteration of the first real iterations (data loading and the machine's load included)."""
    shortened_to: list[int] = field(default_factory=list)
    """Epoch totals the run was cut to when the machine turned out slower than measured."""
    extended_to: list[int] = field(default_factory=list)
    """Epoch totals the run grew to early on, when its first epochs turned out faster than projected."""
    last_epoch_unplanned: bool = False
    """True when the deadline came before the planned last epoch (an epoch cut short, or one that ran slower than
    projected left no time for the next): the run stopped with its rate short of the schedule's end."""
    setup_parts: dict[str, float] = field(default_factory=dict)
    """What ``setup_seconds`` went to: loading the fold, choosing the batch, timing steps, timing validation."""
    spent_seconds: dict[str, float] = field(default_factory=dict)
    """How the fold's wall time was spent, once it has ended (:mod:`autounet.training.budget_split`)."""
    iterations_run: int = 0
    """Training iterations the fold ran in ``spent_seconds["training iterations"]`` (0 until it has ended)."""

    def describe(self) -> str:
        return (f"budget {format_duration(self.budget_seconds)}: {self.seconds_per_iteration:.3f} s per training "
                f"iteration, {self.seconds_per_forward:.3f} s per forward pass, validation ~"
                f"{self.validation_seconds:.0f} s ({'with' if self.validation_tta else 'without'} mirroring TTA), "
                f"setup {self.setup_seconds:.1f} s{self._setup_parts()}"
                f"{f', {self.threads} CPU thread(s)' if self.threads else ''} -> "
                f"{self.epochs} epochs x {self.iterations_per_epoch} "
                f"iterations ({self.val_iterations} validation iterations per epoch)")

    def _setup_parts(self) -> str:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.setup_parts.items())
        return f" ({parts})" if parts else ""


def seconds_per_epoch(schedule: Schedule, seconds_per_iteration: float, seconds_per_val_iteration: float,
                      overhead: float) -> float:
    """The predicted wall time of one epoch of ``schedule``."""
    return (schedule.iterations_per_epoch * seconds_per_iteration
            + schedule.val_iterations * seconds_per_val_iteration + overhead)


def schedule_for_time(training_seconds: float, seconds_per_iteration: float, seconds_per_val_iteration: float,
                      overhead: float, settings: TimeScheduleSettings = TIME_SCHEDULE) -> Schedule | None:
    """The largest schedule whose epochs fit ``training_seconds``; None when not even the minimum fits.

    Example:
        >>> schedule_for_time(60, 0.1, 0.03, 0.5).iterations <= 600
        True
    """
    if training_seconds <= 0:
        return None
    max_epochs = max(1, int(settings.epoch_overhead_share * training_seconds / overhead)) if overhead > 0 else None
    per_iteration = seconds_per_iteration + settings.validation_share * seconds_per_val_iteration
    iterations = int((training_seconds - (max_epochs or 0) * overhead) / per_iteration)
    while iterations >= MIN_TRAINING_ITERATIONS:
        schedule = fit_schedule(iterations, max_epochs, settings)
        cost = schedule.epochs * seconds_per_epoch(schedule, seconds_per_iteration, seconds_per_val_iteration,
                                                   overhead)
        if cost <= training_seconds:
            return schedule
        iterations = int(iterations * 0.95)  # pseudo-Dice rounding or overhead made it too long: fewer
    return None


def shortened_epochs(epochs_done: int, planned_epochs: int, remaining_seconds: float, epoch_seconds: float) -> int:
    """The epoch total to keep to: ``planned_epochs``, or fewer when the remaining time holds fewer epochs.

    Example:
        >>> shortened_epochs(3, 10, 20.0, 5.0), shortened_epochs(3, 10, 100.0, 5.0)
        (7, 10)
    """
    if epoch_seconds <= 0:
        return planned_epochs
    fit = int(max(0.0, remaining_seconds) // epoch_seconds)
    return max(epochs_done, min(planned_epochs, epochs_done + fit))


def too_small_error(budget: float, seconds_per_iteration: float, fixed_seconds: float,
                    smallest: float) -> TimeBudgetTooSmallError:
    """The error for a budget that buys less than the minimum schedule, naming the smallest one that works."""
    return TimeBudgetTooSmallError(f"one training iteration takes {seconds_per_iteration:.2f} s here and setup plus "
                               f"validating the fold ~{fixed_seconds:.0f} s, so {MIN_TRAINING_ITERATIONS} iterations "
                               f"do not fit", smallest, budget)

