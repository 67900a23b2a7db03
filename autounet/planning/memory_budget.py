"""The memory budget a plan is sized for, from the detected hardware or the user's --gpu-memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from autounet.errors import UserError
from autounet.hardware import Accelerator, detect_accelerator, ram_gb
from autounet.planning.constants import CPU_DEFAULT_BUDGET_GB, MPS_RAM_FRACTION
from autounet.planning.plans import HardwareInfo


@dataclass
class MemoryBudget:
    """How much GPU memory to plan for, the hardware it came from, and what the user should know about it."""

    gb: float
    hardware: HardwareInfo
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def hardware_info(accelerator: Accelerator) -> HardwareInfo:
    return HardwareInfo(device=accelerator.kind, name=accelerator.name, total_memory_gb=accelerator.total_memory_gb,
                        free_memory_gb=accelerator.free_memory_gb, count=accelerator.count)


def memory_budget(device: str = "auto", gpu_memory_gb: float | None = None) -> MemoryBudget:
    """The budget for ``device`` (auto|cuda|mps|cpu), or ``gpu_memory_gb`` when given (planning for another machine).

    Without a GPU the plan is made for an 8 GB GPU, and 3D training on the
    CPU is flagged as slow.
    """
    if device not in ("auto", "cuda", "mps", "cpu"):
        raise UserError(f"--device must be auto, cuda, mps or cpu, not '{device}'.")
    if gpu_memory_gb is not None and gpu_memory_gb <= 0:
        raise UserError(f"--gpu-memory must be a positive number of GB, not {gpu_memory_gb:g}.")
    accelerator = detect_accelerator(device)
    hardware = hardware_info(accelerator)
    if gpu_memory_gb is not None:
        return MemoryBudget(float(gpu_memory_gb), hardware,
                            [f"planning for a GPU with {gpu_memory_gb:g} GB (--gpu-memory), this machine has "
                             f"{_describe(accelerator)}"])
    if accelerator.kind == "cuda":
        several = f" (the smallest of {accelerator.count})" if accelerator.count > 1 else ""
        return MemoryBudget(float(accelerator.total_memory_gb), hardware,
                            [f"planning for {accelerator.name}{several} with {accelerator.total_memory_gb:.1f} GB"])
    if accelerator.kind == "mps":
        total, _ = ram_gb()
        budget = round(total * MPS_RAM_FRACTION, 1)
        return MemoryBudget(budget, hardware, [f"planning for Apple MPS with {budget:g} GB "
                                               f"({MPS_RAM_FRACTION:.0%} of the {total:.0f} GB shared memory)"])
    return MemoryBudget(CPU_DEFAULT_BUDGET_GB, hardware,
                        [f"no GPU found: planning for a GPU with {CPU_DEFAULT_BUDGET_GB:g} GB "
                         f"(use --gpu-memory to plan for another size)"],
                        ["training 3D configurations on a CPU is very slow (hours per epoch on large data); "
                         "train on a GPU if you can"])


def _describe(accelerator: Accelerator) -> str:
    if accelerator.kind == "cpu":
        return "no GPU"
    memory = f" with {accelerator.total_memory_gb:.1f} GB" if accelerator.total_memory_gb else ""
    return f"{accelerator.name}{memory}"
