"""torch.distributed plumbing: which process this is, starting N processes, and reducing metrics across them.

``--gpus N`` spawns N processes here; under ``torchrun`` the launcher's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR) is used as is. CUDA
uses NCCL, the CPU gloo (how the tests run it).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when this process was started by torchrun (or another launcher setting the same variables)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def ranks_from_env() -> Ranks:
    if not launched_by_torchrun():
        return Ranks()
    return Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                 int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_spawn_env(rank: int, world_size: int, port: int) -> None:
    """The variables torchrun would set, for a process we spawned ourselves."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})


def init(ranks: Ranks, device_kind: str) -> None:
    if ranks.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo", init_method="env://",
                                rank=ranks.rank, world_size=ranks.world_size)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_batch_size(global_batch: int, ranks: Ranks) -> int:
    """This rank's share of the global batch (the first ``global % world`` ranks take one more).

    Example:
        >>> rank_batch_size(5, Ranks(0, 2, 0)), rank_batch_size(5, Ranks(1, 2, 1))
        (3, 2)
    """
    return global_batch // ranks.world_size + (1 if ranks.rank < global_batch % ranks.world_size else 0)


def sum_across(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all ranks (a no-op for one process)."""
    if ranks.distributed:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()
