"""What this machine offers: accelerator, its memory, CPU cores and RAM."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Accelerator:
    """One compute device as seen by torch. Memory in GiB (None when unknown, e.g. for the CPU)."""

    kind: str  # "cuda" | "mps" | "cpu"
    name: str
    total_memory_gb: float | None = None
    free_memory_gb: float | None = None
    count: int = 1


def detect_accelerator(device: str = "auto") -> Accelerator:
    """The accelerator to plan and train for.

    ``device`` is ``auto`` (CUDA, else MPS, else CPU), or forces ``cuda``,
    ``mps`` or ``cpu``. With several CUDA GPUs, the one with the least memory
    is reported, since a plan must fit on every one of them.
    """
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        gpus = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append((total, free, torch.cuda.get_device_name(index)))
        total, free, name = min(gpus)
        return Accelerator("cuda", name, total / 2**30, free / 2**30, len(gpus))
    if device == "cuda":
        from autounet.errors import UserError

        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU on this machine.")
    mps = getattr(torch.backends, "mps", None)
    if device in ("auto", "mps") and mps is not None and mps.is_available():
        total = _ram_gb()
        return Accelerator("mps", "Apple MPS", total, None, 1)
    if device == "mps":
        from autounet.errors import UserError

        raise UserError("--device mps was asked for, but torch sees no Apple MPS device.")
    return Accelerator("cpu", _cpu_name(), None, None, 0)


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _ram_gb() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def ram_gb() -> tuple[float, float]:
    """(total, available) RAM in GiB."""
    import psutil

    memory = psutil.virtual_memory()
    return memory.total / 2**30, memory.available / 2**30


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"
