"""Time budgets: parse ``30m`` / ``2h`` / ``1h30m``, and fit a training schedule to the iterations a budget buys.

The maths here is pure (no torch, no clock); :mod:`.budget_clock` measures the machine and applies it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from autounet.errors import UserError

PRESETS = ("quick", "standard", "full")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")

MAX_ITERATIONS_PER_EPOCH = 250
"""nnU-Net's epoch length; longer budgets add epochs, not longer epochs."""
TARGET_EPOCHS = 50
"""Short budgets split their iterations into about this many epochs, so the per-epoch schedule has steps to anneal."""
VALIDATION_SHARE = 0.2
"""Pseudo-Dice validation iterations per training iteration (nnU-Net's 50 per 250)."""
MIN_TRAINING_ITERATIONS = 20
"""A duration budget must buy at least this many training iterations, or training refuses to start."""
EPOCH_OVERHEAD_GUESS = 0.5
"""Seconds per epoch for checkpoints, log and plot until whole epochs have been timed."""
EPOCH_OVERHEAD_SHARE = 0.1
"""At most this share of the training time may go to per-epoch overhead (checkpoints, log, plot)."""


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``2h``, ``1h30m`` or ``1.5h``.

    Example:
        >>> parse_duration("1h30m"), parse_duration("90s")
        (5400.0, 90.0)
    """
    cleaned = text.strip().lower().replace(" ", "")
    parts = list(_PART.finditer(cleaned))
    if not cleaned or "".join(p.group(0) for p in parts) != cleaned:
        raise UserError(f"budget '{text}' is not a duration: write e.g. 90s, 30m, 2h or 1h30m, or a preset "
                        f"({', '.join(PRESETS)}).")
    seconds = 0.0
    for part in parts:
        unit = part.group(2)
        if not unit:
            raise UserError(f"budget '{text}' has a number without a unit: write e.g. {part.group(1)}m or "
                            f"{part.group(1)}s (units: h, m, s).")
        if unit not in UNIT_SECONDS:
            raise UserError(f"budget '{text}' has the unknown unit '{unit}': use h, m or s (e.g. 30m, 2h, 1h30m).")
        seconds += float(part.group(1)) * UNIT_SECONDS[unit]
    if seconds <= 0:
        raise UserError(f"budget '{text}' is zero; give a positive duration such as 30m.")
    return seconds


def budget_seconds(budget: str | None) -> float | None:
    """None for a preset name (or no budget), else the duration in seconds; a clear error for anything else."""
    if budget is None or budget.strip().lower() in PRESETS:
        return None
    return parse_duration(budget)


def format_duration(seconds: float) -> str:
    """A short human duration: ``1h30m``, ``12m05s``, ``42s``.

    Example:
        >>> format_duration(5400), format_duration(725), format_duration(41.6), format_duration(0.2)
        ('1h30m', '12m05s', '42s', '0.2s')
    """
    if 0 < seconds < 0.5:
        return f"{seconds:.2g}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_at_least(seconds: float) -> str:
    """:func:`format_duration` rounded up, not to the nearest: a suggested minimum budget that is never too small.

    Example:
        >>> format_at_least(0.5), format_at_least(18.2), format_at_least(3601)
        ('1s', '19s', '1h01m')
    """
    whole = max(1, math.ceil(seconds))
    if whole >= 3600:  # shown to the minute
        whole = math.ceil(whole / 60) * 60
    return format_duration(whole)


@dataclass(frozen=True)
class Schedule:
    """Epochs x iterations per epoch (plus pseudo-Dice validation iterations) for a number of iterations."""

    epochs: int
    iterations_per_epoch: int
    val_iterations: int

    @property
    def iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch


def fit_schedule(total_iterations: int, max_epochs: int | None = None) -> Schedule:
    """Split ``total_iterations`` into epochs (at most ``max_epochs``) of at most 250 iterations.

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
    per_epoch = min(MAX_ITERATIONS_PER_EPOCH, max(1, total_iterations // TARGET_EPOCHS))
    if cap is not None and total_iterations // per_epoch > cap:
        per_epoch = min(MAX_ITERATIONS_PER_EPOCH, math.ceil(total_iterations / cap))
    epochs = max(1, total_iterations // per_epoch)
    if cap is not None:
        epochs = min(epochs, cap)
    return Schedule(epochs, per_epoch, max(1, round(per_epoch * VALIDATION_SHARE)))


@dataclass
class BudgetTiming:
    """What a duration budget measured on this machine and the schedule it chose (saved in training_config.json)."""

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

    def describe(self) -> str:
        return (f"budget {format_duration(self.budget_seconds)}: {self.seconds_per_iteration:.3f} s per training "
                f"iteration, {self.seconds_per_forward:.3f} s per forward pass, validation ~"
                f"{self.validation_seconds:.0f} s ({'with' if self.validation_tta else 'without'} mirroring TTA), "
                f"setup {self.setup_seconds:.0f} s{f', {self.threads} CPU thread(s)' if self.threads else ''} -> "
                f"{self.epochs} epochs x {self.iterations_per_epoch} "
                f"iterations ({self.val_iterations} validation iterations per epoch)")


TTA_MAX_SHARE = 0.2
"""Validation uses mirroring TTA only when that costs at most this share of the budget."""


def seconds_per_epoch(schedule: Schedule, seconds_per_iteration: float, seconds_per_val_iteration: float,
                      overhead: float) -> float:
    """The predicted wall time of one epoch of ``schedule``."""
    return (schedule.iterations_per_epoch * seconds_per_iteration
            + schedule.val_iterations * seconds_per_val_iteration + overhead)


def schedule_for_time(training_seconds: float, seconds_per_iteration: float, seconds_per_val_iteration: float,
                      overhead: float) -> Schedule | None:
    """The largest schedule whose epochs fit ``training_seconds``; None when not even the minimum fits.

    Example:
        >>> schedule_for_time(60, 0.1, 0.03, 0.5).iterations <= 600
        True
    """
    if training_seconds <= 0:
        return None
    max_epochs = max(1, int(EPOCH_OVERHEAD_SHARE * training_seconds / overhead)) if overhead > 0 else None
    per_iteration = seconds_per_iteration + VALIDATION_SHARE * seconds_per_val_iteration
    iterations = int((training_seconds - (max_epochs or 0) * overhead) / per_iteration)
    while iterations >= MIN_TRAINING_ITERATIONS:
        schedule = fit_schedule(iterations, max_epochs)
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


class BudgetTooSmallError(UserError):
    """A --budget that buys less than the shortest schedule: ``reason`` says why, ``smallest_seconds`` is a budget
    (per fold) that works, so a caller that split a larger budget can restate both for it."""

    def __init__(self, reason: str, smallest_seconds: float, budget_seconds: float | None = None):
        self.reason, self.smallest_seconds = reason, smallest_seconds
        budget = "the" if budget_seconds is None else f"a {format_duration(budget_seconds)}"
        super().__init__(f"{budget} budget is too small: {reason}; give --budget {format_at_least(smallest_seconds)} "
                         f"or more.")


def too_small_error(budget: float, seconds_per_iteration: float, fixed_seconds: float,
                    smallest: float) -> BudgetTooSmallError:
    """The error for a budget that buys less than the minimum schedule, naming the smallest one that works."""
    return BudgetTooSmallError(f"one training iteration takes {seconds_per_iteration:.2f} s here and setup plus "
                               f"validating the fold ~{fixed_seconds:.0f} s, so {MIN_TRAINING_ITERATIONS} iterations "
                               f"do not fit", smallest, budget)
