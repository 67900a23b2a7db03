"""The memory model: exact against a direct trace, and within 10 % of torch.profiler's measurement on CPU."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import Action, MemoryProfile

from autounet.network import NetworkConfig, build_network
from autounet.planning.memory import (estimate_training_memory_gb, persistent_bytes, tensor_bytes,
                                      traced_step_bytes, training_step)


def small_3d() -> NetworkConfig:
    return NetworkConfig(3, 1, 3, [8, 16, 32], [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]])


def small_2d() -> NetworkConfig:
    return NetworkConfig(2, 2, 2, [16, 32, 64, 64], [[3, 3]] * 4, [[1, 1], [2, 2], [2, 2], [2, 2]])


def anisotropic_3d() -> NetworkConfig:
    return NetworkConfig(3, 1, 4, [8, 16, 32], [[1, 3, 3], [3, 3, 3], [3, 3, 3]], [[1, 1, 1], [1, 2, 2], [2, 2, 2]])


def profiler_peak_bytes(config: NetworkConfig, patch: list[int], batch: int) -> int:
    """Peak CPU bytes of one real fp32 training step (+ momentum buffers), from torch.profiler's memory timeline."""
    torch.manual_seed(0)
    network = build_network(config).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99)
    for _ in range(2):  # the second step runs with momentum buffers, as every step of training does
        optimizer.zero_grad(set_to_none=True)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                     with_stack=True) as prof:
            training_step(network, config, patch, batch, torch.float32, "cpu")
        optimizer.step()
    live = peak = 0
    for _, action, _, size in MemoryProfile(prof.profiler.kineto_results).timeline:
        if action in (Action.PREEXISTING, Action.CREATE):
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("config, patch, batch", [(small_3d(), [16, 24, 16], 2), (small_2d(), [64, 48], 4),
                                                  (anisotropic_3d(), [8, 32, 32], 3)])
def test_estimate_agrees_with_profiler_within_10_percent(config, patch, batch):
    estimated = tensor_bytes(config, patch, batch, amp=False)
    measured = profiler_peak_bytes(config, patch, batch)
    assert abs(estimated - measured) / measured < 0.10, (estimated, measured)


@pytest.mark.parametrize("config, patch, batch, amp", [(small_3d(), [32, 24, 16], 5, True),
                                                       (small_2d(), [96, 48], 7, False),
                                                       (anisotropic_3d(), [4, 48, 32], 2, True)])
def test_profile_extrapolation_is_exact(config, patch, batch, amp):
    direct = traced_step_bytes(config, patch, batch, torch.float16 if amp else torch.float32)
    assert tensor_bytes(config, patch, batch, amp) == pytest.approx(direct + persistent_bytes(config, amp))


def test_estimate_grows_with_batch_and_patch_and_amp_saves_memory():
    config = small_3d()
    base = estimate_training_memory_gb(config, [16, 16, 16], 2)
    assert estimate_training_memory_gb(config, [16, 16, 16], 3) > base
    assert estimate_training_memory_gb(config, [32, 16, 16], 2) > base
    assert estimate_training_memory_gb(config, [32, 32, 32], 4, amp=True) < estimate_training_memory_gb(
        config, [32, 32, 32], 4, amp=False)
