"""``plan --verify``: run one real training step on the CUDA GPU and measure its peak memory."""

from __future__ import annotations

from typing import Callable

import torch

from autounet.errors import UserError
from autounet.network import build_network
from autounet.network.step import loss_for, optimisation_step, zero_batch
from autounet.planning.memory import GB
from autounet.planning.plans import ConfigurationPlan

SGD_MOMENTUM = 0.99
GRAD_CLIP = 12.0


def real_training_step(plan: ConfigurationPlan, device: str, amp: bool, steps: int = 2) -> torch.nn.Module:
    """``steps`` training steps at the plan's batch and patch on ``device``, as autounet trains; the trained network.

    Training's own step (:func:`~autounet.network.step.optimisation_step`): SGD with Nesterov momentum,
    half-precision autocast with a gradient scaler, the deep-supervision loss, gradient clipping. Two steps, so
    the optimiser's momentum buffers exist during the second.
    """
    network = build_network(plan.network).to(device).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=SGD_MOMENTUM, nesterov=True)
    scaler = torch.amp.GradScaler(device, enabled=amp)
    loss = loss_for(plan.network)
    for _ in range(steps):
        images, targets = zero_batch(plan.network, list(plan.patch_size), plan.batch_size, torch.float32, device)
        optimisation_step(network, loss, images, targets, optimizer, GRAD_CLIP, scaler,
                          torch.autocast(device, dtype=torch.float16, enabled=amp))
    return network


def require_cuda_for_verify() -> None:
    """Raise a UserError unless torch sees a CUDA GPU (verification measures a real step on it)."""
    if not torch.cuda.is_available():
        raise UserError("--verify runs a real training step and needs a CUDA GPU; torch sees none on this machine.")


def measure_cuda_step_gb(plan: ConfigurationPlan, amp: bool = True) -> float:
    """Peak GPU memory (GiB) of real training steps: allocator peak plus what was in use before (the CUDA context).

    Returns ``inf`` when the step runs out of memory.
    """
    require_cuda_for_verify()
    torch.cuda.init()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    in_use_before = (total - free) - torch.cuda.memory_reserved()
    torch.cuda.reset_peak_memory_stats()
    try:
        real_training_step(plan, "cuda", amp)
        torch.cuda.synchronize()
    except torch.cuda.OutOfMemoryError:
        return float("inf")
    finally:
        torch.cuda.empty_cache()
    return (torch.cuda.max_memory_reserved() + in_use_before) / GB


VERIFY_RETRIES = 3
VERIFY_SAFETY = 0.97
"""When a measured step overshoots, re-plan for this fraction of the budget scaled by the overshoot."""


def verify_configurations(configurations: dict[str, ConfigurationPlan], budget_gb: float,
                          replan: Callable[[str, float], ConfigurationPlan], amp: bool = True,
                          measure: Callable[[ConfigurationPlan, bool], float] | None = None,
                          ) -> dict[str, ConfigurationPlan]:
    """Measure each configuration's real step; re-plan any that overshoots for a smaller budget (up to 3 times).

    ``replan(name, budget_gb)`` plans one configuration for a budget;
    ``measure(plan, amp)`` defaults to a real step on the CUDA GPU. The result
    holds ``measured_memory_gb`` beside each estimate.
    """
    measure = measure or measure_cuda_step_gb
    verified: dict[str, ConfigurationPlan] = {}
    for name, plan in configurations.items():
        if plan.previous_stage is not None and plan.data_identifier in verified:
            # the cascade's fullres stage trains the same network as 3d_fullres
            plan.measured_memory_gb = verified[plan.data_identifier].measured_memory_gb
            verified[name] = plan
            continue
        target = budget_gb
        measured = measure(plan, amp)
        for _ in range(VERIFY_RETRIES):
            if measured <= budget_gb:
                break
            target = target * VERIFY_SAFETY * (budget_gb / measured if measured != float("inf") else 0.8)
            plan = replan(name, target)
            measured = measure(plan, amp)
        if measured > budget_gb:
            raise UserError(f"configuration {name}: a real training step still needs more than the "
                            f"{budget_gb:g} GB budget after {VERIFY_RETRIES} smaller plans; give less --gpu-memory.")
        plan.measured_memory_gb = round(measured, 3)
        verified[name] = plan
    return verified
