"""The wall time of a real training step and of an inference forward pass, once the times have settled."""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from autounet.measure import timing_cache
from autounet.measure.settings import TIMER, TimerSettings
from autounet.network import NetworkConfig, build_network
from autounet.network.cpu_speed import speed_up_for_cpu
from autounet.network.step import loss_for, optimisation_step, zero_batch

SGD_LEARNING_RATE, SGD_MOMENTUM, GRAD_CLIP = 1e-3, 0.99, 12.0
"""The throwaway network is stepped with nnU-Net's SGD; the optimiser's own cost is small beside the network's."""


@dataclass(frozen=True)
class StepSeconds:
    """Measured wall times of one training iteration and of one inference forward pass of one patch."""

    training_iteration: float
    forward: float


def measure_step_seconds(network: NetworkConfig, patch_size: list[int], batch_size: int, device: torch.device,
                         fast_cpu: bool = True, window_seconds: float | None = None,
                         settings: TimerSettings = TIMER, remembered: bool = True,
                         deadline: float | None = None) -> StepSeconds:
    """Median wall time of real training iterations and of inference forward passes of a fresh network.

    After a warm-up step, steps are timed for at least ``window_seconds`` and until the last few agree within
    ``settings.settled_ratio`` (or 3 windows have passed): on a shared CPU a fresh process's first steps and
    single steps vary many-fold, and the median of settled steps is what a long run sees. The network is a
    throwaway built from ``network``: the run's own weights are not touched. With ``remembered``, a timing this
    machine already measured (:mod:`.timing_cache`) is returned without measuring, and a new one is stored.
    Past ``deadline`` (a ``time.perf_counter()``) timing stops after one timed step, settled or not.
    """
    key = timing_key(network, patch_size, batch_size, device, fast_cpu)
    if remembered and (known := timing_cache.remembered(key)) is not None:
        return StepSeconds(*known)
    steps = _measure(network, patch_size, batch_size, device, fast_cpu, window_seconds, settings, deadline)
    if remembered:
        timing_cache.remember(key, [steps.training_iteration, steps.forward])
    return steps


def timing_key(network: NetworkConfig, patch_size: list[int], batch_size: int, device: torch.device,
               fast_cpu: bool) -> str:
    """The :mod:`.timing_cache` key of a step timing: the network, patch, batch, kernels and CPU threads."""
    return timing_cache.timing_key(device, network=dataclasses.asdict(network), patch=list(patch_size),
                                   batch=batch_size, fast_cpu=fast_cpu and device.type == "cpu",
                                   threads=torch.get_num_threads() if device.type == "cpu" else None)


def _measure(network: NetworkConfig, patch_size: list[int], batch_size: int, device: torch.device, fast_cpu: bool,
             window_seconds: float | None, settings: TimerSettings, deadline: float | None = None) -> StepSeconds:
    window = settings.window_seconds if window_seconds is None else window_seconds
    torch.manual_seed(0)
    net = build_network(network).to(device)
    if fast_cpu and device.type == "cpu":
        net = speed_up_for_cpu(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=SGD_LEARNING_RATE, momentum=SGD_MOMENTUM, nesterov=True)
    loss = loss_for(network)

    def train_once() -> None:
        images, targets = zero_batch(network, list(patch_size), batch_size, torch.float32, device)
        optimisation_step(net, loss, images, targets, optimizer, GRAD_CLIP)

    net.train()
    iteration = settled_median(train_once, device, window, settings, deadline)
    net.eval()
    x = torch.zeros([1, network.in_channels, *patch_size], device=device)
    with torch.no_grad():
        forward = settled_median(lambda: net(x), device, window / 2, settings, deadline)
    return StepSeconds(iteration, forward)


def settled_median(step: Callable[[], object], device: torch.device, window_seconds: float,
                   settings: TimerSettings = TIMER, deadline: float | None = None) -> float:
    """Median of the last few step times, once they have settled (a fresh process runs its first steps slowly),
    or of those timed by ``deadline`` (at least one)."""
    seconds: list[float] = []
    warm_up = time.perf_counter()
    step()  # warm-up: first calls build kernels and allocate
    synchronize(device)
    began = time.perf_counter()
    needed = settings.min_timed_steps if began - warm_up < settings.slow_step_seconds else settings.slow_timed_steps
    while len(seconds) < settings.max_timed_steps:
        start = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        recent = seconds[-needed:]
        settled = len(recent) == needed and max(recent) <= settings.settled_ratio * min(recent)
        elapsed = time.perf_counter() - began
        if (settled and elapsed >= window_seconds) or (len(recent) == needed and elapsed >= 3 * window_seconds):
            break
        if deadline is not None and time.perf_counter() >= deadline:
            break
    return statistics.median(seconds[-needed:])


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
