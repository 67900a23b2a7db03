"""Measure this machine and hold a training run to a duration budget.

:func:`measure_step_seconds` times real training iterations and forward passes of a plan's network (the planner
uses it too); :class:`BudgetClock` fits the schedule once and re-checks the remaining time after every epoch.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from autounet.errors import UserError
from autounet.network import NetworkConfig, build_network
from autounet.planning.plans import ConfigurationPlan
from autounet.preprocessing.store import CaseStore
from autounet.training.budget import (EPOCH_OVERHEAD_GUESS, TTA_MAX_SHARE, BudgetTiming, Schedule,
                                      schedule_for_time, shortened_epochs, too_small_error)

EPOCH_SAFETY = 1.05
"""Remaining epochs are fitted with the last epoch's time times this, so noise does not overrun the budget."""
VALIDATION_CASE_SECONDS = 0.25
"""Per validation case: reading, preprocessing, resampling, writing and scoring besides the network."""
VALIDATION_FIXED_SECONDS = 1.0
"""Loading the predictor and the evaluation once."""
VALIDATION_FACTOR = 1.5
"""Safety on the measured tile time: mirrored inputs and a loaded machine vary it."""
RECENT_EPOCHS = 3
"""Remaining epochs are projected at the median time of this many recent epochs."""
REFIT_EARLY_SHARE = 0.25
"""While fewer than this share of the epochs are done, the epoch total may also grow (a slow start, e.g. another
job on the machine, is not held against the whole run)."""
LAST_EPOCHS_CAUTION = 2
"""When this many epochs or fewer are left, they are projected at the slowest recent epoch, not the median."""
CALIBRATION_ITERATIONS = 5
"""Real training iterations (after the first) timed to re-fit the schedule at the start of training."""
MEASURE_SECONDS = 1.0
MIN_TIMED_STEPS = 4
SLOW_STEP_SECONDS = 2.0
SLOW_TIMED_STEPS = 2
"""Steps whose warm-up took over SLOW_STEP_SECONDS are timed this many times (each already spans many kernels;
ISBI's 6.5 s steps spent 95 s of a 30-minute budget on timing one and two threads)."""
MAX_TIMED_STEPS = 60
SETTLED_RATIO = 2.0
"""Steps count as settled when the slowest of the last few takes at most this many times the fastest."""


@dataclass(frozen=True)
class StepSeconds:
    """Measured wall times of one training iteration and of one inference forward pass of one patch."""

    training_iteration: float
    forward: float


def measure_step_seconds(network: NetworkConfig, patch_size: list[int], batch_size: int, device: torch.device,
                         fast_cpu: bool = True, window_seconds: float = MEASURE_SECONDS) -> StepSeconds:
    """Median wall time of real training iterations and of inference forward passes of a fresh network.

    After a warm-up step, steps are timed for at least ``window_seconds`` and until the last 4 agree within a
    factor of 2 (or 3 windows have passed): on a shared CPU a fresh process's first steps and single steps
    vary many-fold, and the median of settled steps is what a long run sees. The network is a throwaway built
    from ``network``: the run's own weights are not touched.
    """
    from autounet.planning.memory import training_step
    from autounet.training.cpu_speed import speed_up_for_cpu

    torch.manual_seed(0)
    net = build_network(network).to(device)
    if fast_cpu and device.type == "cpu":
        net = speed_up_for_cpu(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)

    def train_once() -> None:
        optimizer.zero_grad(set_to_none=True)
        training_step(net, network, list(patch_size), batch_size, torch.float32, device)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        optimizer.step()

    net.train()
    iteration = _median_seconds(train_once, device, window_seconds)
    net.eval()
    x = torch.zeros([1, network.in_channels, *patch_size], device=device)
    with torch.no_grad():
        forward = _median_seconds(lambda: net(x), device, window_seconds / 2)
    return StepSeconds(iteration, forward)


THROUGHPUT_TOLERANCE = 1.15
"""A time budget trains with the smallest batch whose seconds per sample are within this factor of the best
measured: beyond that batch a CPU does no more samples per second, so a larger batch only buys fewer updates."""
MIN_BATCH_SIZE = 2
"""nnU-Net's smallest batch; batch 1 gives no batch statistics to the Dice loss of a 2D network."""


@dataclass(frozen=True)
class BatchTiming:
    """One candidate batch size and its measured seconds per training iteration."""

    batch_size: int
    seconds_per_iteration: float

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds_per_iteration / self.batch_size


def candidate_batches(max_batch: int) -> list[int]:
    """Batch sizes a time budget tries: doubling from :data:`MIN_BATCH_SIZE`, ending at ``max_batch``.

    Example:
        >>> candidate_batches(9), candidate_batches(2), candidate_batches(1)
        ([2, 4, 8, 9], [2], [1])
    """
    if max_batch <= MIN_BATCH_SIZE:
        return [max(1, max_batch)]
    batches = []
    batch = MIN_BATCH_SIZE
    while batch < max_batch:
        batches.append(batch)
        batch *= 2
    return batches + [max_batch]


def plateau_batch(timings: list[BatchTiming]) -> int:
    """The smallest measured batch whose seconds per sample are within :data:`THROUGHPUT_TOLERANCE` of the best.

    Example:
        >>> plateau_batch([BatchTiming(2, 0.08), BatchTiming(4, 0.1), BatchTiming(8, 0.15), BatchTiming(16, 0.3)])
        8
    """
    best = min(t.seconds_per_sample for t in timings)
    return min(t.batch_size for t in timings if t.seconds_per_sample <= THROUGHPUT_TOLERANCE * best)


def time_batch_size(network: NetworkConfig, patch_size: list[int], max_batch: int, device: torch.device,
                    fast_cpu: bool = True) -> tuple[int, list[BatchTiming]]:
    """The batch a time budget trains with, at most ``max_batch`` (the plan's, sized for memory).

    Batches double from 2 until samples per second stop improving by more than the tolerance (or
    ``max_batch`` is reached); the smallest batch on the plateau wins. On a CPU that is a small batch (more,
    cheaper updates in the same time); on a GPU the plateau usually reaches the plan's batch.
    """
    timings: list[BatchTiming] = []
    for batch in candidate_batches(max_batch):
        steps = measure_step_seconds(network, patch_size, batch, device, fast_cpu, window_seconds=0.5)
        timings.append(BatchTiming(batch, steps.training_iteration))
        best = min(t.seconds_per_sample for t in timings)
        if timings[-1].seconds_per_sample > THROUGHPUT_TOLERANCE * best:
            break  # past the plateau: larger batches only get slower per sample
    return plateau_batch(timings), timings


def _median_seconds(step, device: torch.device, window_seconds: float) -> float:
    """Median of the last few step times, once they have settled (a fresh process runs its first steps slowly)."""
    seconds: list[float] = []
    warm_up = time.perf_counter()
    step()  # warm-up: first calls build kernels and allocate
    _sync(device)
    began = time.perf_counter()
    needed = MIN_TIMED_STEPS if began - warm_up < SLOW_STEP_SECONDS else SLOW_TIMED_STEPS
    while len(seconds) < MAX_TIMED_STEPS:
        start = time.perf_counter()
        step()
        _sync(device)
        seconds.append(time.perf_counter() - start)
        recent = seconds[-needed:]
        settled = len(recent) == needed and max(recent) <= SETTLED_RATIO * min(recent)
        elapsed = time.perf_counter() - began
        if (settled and elapsed >= window_seconds) or (len(recent) == needed and elapsed >= 3 * window_seconds):
            break
    return statistics.median(seconds[-needed:])


def fastest_threads(measure, device: torch.device) -> StepSeconds:
    """Run ``measure()`` with torch's threads and with one thread on the CPU; keep the faster setting.

    On a CPU shared with other jobs, several threads waiting for each other can be many times slower than
    one thread; a budget run takes whichever is faster now.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        return measure()
    torch.set_num_threads(1)
    single = measure()
    torch.set_num_threads(threads)
    several = measure()
    if single.training_iteration < several.training_iteration:
        torch.set_num_threads(1)
        return single
    return several


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class ValidationCost:
    """What predicting the fold's validation cases costs: tiles, and the measured seconds of one tile."""

    seconds_per_tile: float
    """Seconds per sliding-window tile, measured by predicting one real validation case without mirroring."""
    tiles: int
    cases: int
    mirrorings: int
    """Network inputs per tile with mirroring TTA (2 ** spatial axes)."""

    def seconds(self, tta: bool) -> float:
        """Estimated wall time of the final validation, with or without mirroring TTA.

        Example:
            >>> ValidationCost(0.01, 100, 4, 8).seconds(tta=True)
            14.0
        """
        inputs = self.tiles * (self.mirrorings if tta else 1)
        return round(inputs * self.seconds_per_tile * VALIDATION_FACTOR + self.cases * VALIDATION_CASE_SECONDS
                     + VALIDATION_FIXED_SECONDS, 1)


def measure_validation_cost(plan: ConfigurationPlan, store: CaseStore, case_ids: list[str],
                            device: torch.device) -> ValidationCost:
    """Count the validation cases' tiles and time a real sliding-window prediction of the median one."""
    from autounet.inference.predictor import resolve_precision
    from autounet.inference.sliding_window import WindowSettings, predict_logits, tile_boxes, tile_shape

    # at the precision the fold's validation will run in (bfloat16 on CPUs that have it: ~3x faster than float32)
    settings = WindowSettings(tuple(plan.patch_size), tuple(plan.network.total_downsampling()), mirror=False,
                              compute_dtype=resolve_precision("auto", device))
    mirrorings = 2 ** len(plan.patch_size)
    if not case_ids:
        return ValidationCost(0.0, 0, 0, mirrorings)
    counts = {}
    for case_id in case_ids:
        shape = store.load_properties(case_id).shape_after_resample
        tile = tile_shape(shape, settings)
        counts[case_id] = len(tile_boxes([max(s, t) for s, t in zip(shape, tile)], tile, settings.step))
    median_case = sorted(case_ids, key=counts.get)[len(case_ids) // 2]
    network = build_network(plan.network).to(device).eval()  # built as inference loads it
    data = np.array(store.load(median_case).data)  # a writable copy for torch
    start = time.perf_counter()
    predict_logits(network, data, plan.network.num_classes, settings, device)
    _sync(device)
    per_tile = (time.perf_counter() - start) / max(1, counts[median_case])
    return ValidationCost(per_tile, sum(counts.values()), len(case_ids), mirrorings)


def schedule_within(budget: float, setup: float, steps: StepSeconds, batch_size: int,
                    validation: ValidationCost) -> tuple[bool, float, Schedule | None]:
    """Validation TTA or not, its estimated seconds, and the schedule that fits (None if none does)."""
    tta = validation.seconds(tta=True) <= TTA_MAX_SHARE * budget
    validate = validation.seconds(tta)
    schedule = schedule_for_time(budget - setup - validate, steps.training_iteration, steps.forward * batch_size,
                                 EPOCH_OVERHEAD_GUESS)
    return tta, validate, schedule


def smallest_budget(budget: float, setup: float, steps: StepSeconds, batch_size: int,
                    validation: ValidationCost) -> float:
    """The smallest budget (in 5 % steps above ``budget``, whole seconds) that buys the minimum schedule."""
    while schedule_within(budget, setup, steps, batch_size, validation)[2] is None:
        budget = float(math.ceil(budget * 1.05 + 1))
    return budget


class BudgetClock:
    """Holds one fold's training (plus its final validation) to ``budget_seconds`` from ``started``.

    The schedule is fitted in three steps, each on better evidence: :meth:`fit` from timed iterations of a
    throwaway network; :meth:`iteration_done` after the first few real iterations (data workers, augmentation
    and the machine's load included: the epoch count is re-fitted both ways, while the learning rate is still
    at its start so the schedule stays exact); :meth:`epoch_done` after each epoch (only shorter). If the time
    left would not cover validation, the running epoch stops early and becomes the last.
    """

    def __init__(self, budget_seconds: float, started: float | None = None):
        self.budget_seconds = budget_seconds
        self.started = time.perf_counter() if started is None else started
        self.timing: BudgetTiming | None = None
        self._batch = 0
        self._calibrated = False
        self._last_iteration_end = 0.0
        self._iteration_seconds: list[float] = []
        self._epoch_start: float | None = None
        self._epochs_done = 0
        self._epoch_seconds: list[float] = []

    def remaining(self) -> float:
        return self.budget_seconds - (time.perf_counter() - self.started)

    def fit(self, steps: StepSeconds, batch_size: int, validation: ValidationCost) -> BudgetTiming:
        """Choose TTA and the schedule that fit the remaining time; raise UserError when none does."""
        import autounet.evaluation.folders  # noqa: F401 - imported now so validation's clock starts warm
        import autounet.inference.predictor  # noqa: F401

        self._batch = batch_size
        setup = time.perf_counter() - self.started
        tta, validate, schedule = schedule_within(self.budget_seconds, setup, steps, batch_size, validation)
        if schedule is None:
            raise too_small_error(self.budget_seconds, steps.training_iteration, setup + validate,
                                  smallest_budget(self.budget_seconds, setup, steps, batch_size, validation))
        self.timing = BudgetTiming(self.budget_seconds, round(steps.training_iteration, 4), round(steps.forward, 4),
                                   round(validate, 1), tta, EPOCH_OVERHEAD_GUESS, round(setup, 1), schedule.epochs,
                                   schedule.iterations_per_epoch, schedule.val_iterations)
        return self.timing

    def epoch_started(self) -> None:
        self._epoch_start = time.perf_counter()

    def iteration_done(self, iteration: int) -> bool:
        """After training iteration ``iteration`` (1-based) of an epoch: False when the epoch must stop now."""
        timing = self.timing
        assert timing is not None, "fit() first"
        now = time.perf_counter()
        if not self._calibrated:
            # the first real iteration also waits for the data workers to start: time the ones after it
            if iteration > 1:
                self._iteration_seconds.append(now - self._last_iteration_end)
            self._last_iteration_end = now
            if iteration == min(CALIBRATION_ITERATIONS + 1, timing.iterations_per_epoch) and iteration > 1:
                self._calibrate(statistics.median(self._iteration_seconds), iteration)
        return self.remaining() > timing.validation_seconds

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
        fewer than :data:`REFIT_EARLY_SHARE` of the epochs are done the total is re-fitted both ways (the rate has
        barely decayed); after that it can only shrink.
        """
        timing = self.timing
        assert timing is not None and self._epoch_start is not None, "fit() and epoch_started() first"
        self._epochs_done += 1
        epoch_seconds = time.perf_counter() - self._epoch_start
        self._epoch_seconds.append(epoch_seconds)
        if not self._calibrated:  # epochs of one iteration: calibrate on the whole epoch
            self._calibrated = True
            timing.measured_seconds_per_iteration = round(epoch_seconds / timing.iterations_per_epoch, 4)
        recent = (self._epoch_seconds[1:] or self._epoch_seconds)[-RECENT_EPOCHS:]
        typical = statistics.median(recent) * EPOCH_SAFETY
        left = self.remaining() - timing.validation_seconds
        done = self._epochs_done
        if not completed:
            kept = done
        elif done == 1 and self._iteration_seconds:
            kept = timing.epochs  # just re-fitted on this epoch's own iterations; its total waited for workers too
        else:
            kept = shortened_epochs(done, timing.epochs, left, typical)
            if done < REFIT_EARLY_SHARE * timing.epochs and typical > 0:
                kept = max(kept, done + int(max(0.0, left) // typical))
        if completed and done < kept <= done + LAST_EPOCHS_CAUTION:
            # the last epochs are projected at the slowest recent epoch: one slower than the median must not find
            # the next epoch unaffordable after it ran with the rate of a longer schedule
            kept = max(done + 1, shortened_epochs(done, kept, left, max(recent) * EPOCH_SAFETY))
        if kept == done and done < timing.epochs:
            timing.last_epoch_unplanned = True
        if kept < timing.epochs:
            timing.shortened_to.append(kept)
        elif kept > timing.epochs:
            timing.extended_to.append(kept)
        timing.epochs = kept
        return timing.epochs
