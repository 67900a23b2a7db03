"""Measure this machine and hold a training run to a duration budget.

:func:`measure_step_seconds` times real training iterations and forward passes of a plan's network (the planner
uses it too); :class:`BudgetClock` fits the schedule once and re-checks the remaining time after every epoch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from autounet.errors import UserError
from autounet.network import NetworkConfig, build_network
from autounet.training.budget import (TTA_MAX_SHARE, BudgetTiming, Schedule, schedule_for_time, shortened_epochs,
                                      too_small_message)

EPOCH_OVERHEAD_GUESS = 0.5
"""Seconds per epoch for checkpoints, log and plot before the first epoch has measured them."""
EPOCH_SAFETY = 1.05
"""Remaining epochs are fitted with the last epoch's time times this, so noise does not overrun the budget."""
VALIDATION_CASE_SECONDS = 0.3
"""Per validation case: reading, resampling, writing and scoring besides the network's forward passes."""
VALIDATION_FACTOR = 1.3
"""Forward passes inside sliding windows cost more than bare ones (padding, Gaussian weighting, copies)."""
CALIBRATION_ITERATIONS = 5
"""Real training iterations (after the first) timed to re-fit the schedule at the start of training."""
MEASURE_SECONDS = 2.0
MIN_TIMED_STEPS = 4
MAX_TIMED_STEPS = 40


@dataclass(frozen=True)
class StepSeconds:
    """Measured wall times of one training iteration and of one inference forward pass of one patch."""

    training_iteration: float
    forward: float


def measure_step_seconds(network: NetworkConfig, patch_size: list[int], batch_size: int, device: torch.device,
                         fast_cpu: bool = True, window_seconds: float = MEASURE_SECONDS) -> StepSeconds:
    """Median wall time of real training iterations and of inference forward passes of a fresh network.

    After a warm-up step, steps are timed for about ``window_seconds`` (at least 4, at most 40): on a shared
    CPU single steps vary many-fold, and the median over a window is what a long run sees. The network is a
    throwaway built from ``network``: the run's own weights are not touched.
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


def _median_seconds(step, device: torch.device, window_seconds: float) -> float:
    seconds: list[float] = []
    step()  # warm-up: first calls build kernels and allocate
    _sync(device)
    began = time.perf_counter()
    while len(seconds) < MAX_TIMED_STEPS and (len(seconds) < MIN_TIMED_STEPS
                                               or time.perf_counter() - began < window_seconds):
        start = time.perf_counter()
        step()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def validation_tiles(shapes: list[list[int]], patch_size: list[int], divisor: list[int]) -> int:
    """How many sliding-window tiles (step 0.5, no mirroring) the preprocessed (z, y, x) ``shapes`` need."""
    from autounet.inference.sliding_window import WindowSettings, tile_boxes, tile_shape

    settings = WindowSettings(tuple(patch_size), tuple(divisor))
    total = 0
    for shape in shapes:
        tile = tile_shape(shape, settings)
        total += len(tile_boxes([max(s, t) for s, t in zip(shape, tile)], tile, settings.step))
    return total


def validation_seconds(tiles: int, cases: int, seconds_per_forward: float, mirrorings: int) -> float:
    """Estimated time to predict and score ``cases`` validation cases holding ``tiles`` tiles.

    Example:
        >>> round(validation_seconds(100, 4, 0.01, 8), 2)
        11.6
    """
    return tiles * mirrorings * seconds_per_forward * VALIDATION_FACTOR + cases * VALIDATION_CASE_SECONDS


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
        self._tiles = self._cases = self._mirrorings = self._batch = 0
        self._calibrated = False
        self._last_iteration_end = 0.0
        self._iteration_seconds: list[float] = []
        self._epoch_start: float | None = None
        self._epochs_done = 0

    def remaining(self) -> float:
        return self.budget_seconds - (time.perf_counter() - self.started)

    def _validation_seconds(self, seconds_per_forward: float) -> float:
        return validation_seconds(self._tiles, self._cases, seconds_per_forward, self._mirrorings)

    def fit(self, steps: StepSeconds, batch_size: int, tiles: int, cases: int, spatial_dims: int) -> BudgetTiming:
        """Choose TTA and the schedule that fit the remaining time; raise UserError when none does."""
        import autounet.evaluation.folders  # noqa: F401 - imported now so validation's clock starts warm
        import autounet.inference.predictor  # noqa: F401

        self._tiles, self._cases, self._batch = tiles, cases, batch_size
        per_val_iteration = steps.forward * batch_size
        mirrored = validation_seconds(tiles, cases, steps.forward, 2 ** spatial_dims)
        tta = mirrored <= TTA_MAX_SHARE * self.budget_seconds
        self._mirrorings = 2 ** spatial_dims if tta else 1
        validate = self._validation_seconds(steps.forward)
        setup = time.perf_counter() - self.started
        schedule: Schedule | None = schedule_for_time(self.remaining() - validate, steps.training_iteration,
                                                      per_val_iteration, EPOCH_OVERHEAD_GUESS)
        if schedule is None:
            raise UserError(too_small_message(self.budget_seconds, steps.training_iteration, setup + validate,
                                              per_val_iteration, EPOCH_OVERHEAD_GUESS))
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

    def validation_iterations_done(self, seconds: float, iterations: int) -> None:
        """Re-estimate the final validation from this epoch's pseudo-Dice forward passes (the current load)."""
        if self.timing is None or iterations < 1 or self._batch < 1:
            return
        forward = seconds / (iterations * self._batch)
        self.timing.validation_seconds = round(max(self.timing.validation_seconds,
                                                   self._validation_seconds(forward)), 1)

    def epoch_done(self, completed: bool) -> int:
        """After an epoch: the epoch total that still ends (with validation) within the budget."""
        timing = self.timing
        assert timing is not None and self._epoch_start is not None, "fit() and epoch_started() first"
        self._epochs_done += 1
        epoch_seconds = time.perf_counter() - self._epoch_start
        if not self._calibrated:  # epochs of one iteration: calibrate on the whole epoch
            self._calibrated = True
            timing.measured_seconds_per_iteration = round(epoch_seconds / timing.iterations_per_epoch, 4)
        kept = self._epochs_done if not completed else shortened_epochs(
            self._epochs_done, timing.epochs, self.remaining() - timing.validation_seconds,
            epoch_seconds * EPOCH_SAFETY)
        if kept < timing.epochs:
            timing.shortened_to.append(kept)
            timing.epochs = kept
        return timing.epochs
