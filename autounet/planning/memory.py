"""How much GPU memory one training step of the real network needs, measured without a GPU.

The U-Net a configuration describes is built on PyTorch's ``meta`` device,
where tensors have shapes and dtypes but no data. One training step (forward,
deep-supervision loss, backward) runs there under a dispatch mode that tracks
every tensor storage from creation to release, so the peak of live bytes is
the peak the allocator would see. Parameters, optimiser state (SGD momentum),
mixed-precision weight copies, and margins for the CUDA context, cuDNN
workspace and allocator fragmentation are added on top.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from autounet.network import NetworkConfig, build_network
from autounet.network.step import forward_backward, loss_for, zero_batch
from autounet.planning.constants import ALLOCATOR_OVERHEAD, CUDA_CONTEXT_GB, CUDNN_WORKSPACE_GB
from autounet.planning.torch_dispatch import TorchDispatchMode, tensors_in

GB = 2**30


class LiveBytesTracker(TorchDispatchMode):
    """Tracks the bytes of tensor storages created inside it and the peak of those alive at once.

    ``timeline`` holds the live bytes right after each storage is created (the only moments a peak can occur).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.timeline: list[int] = []
        self._seen: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in tensors_in(result):
            self._track(value.untyped_storage())
        return result

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        if key in self._seen:
            return
        self._seen.add(key)
        nbytes = storage.nbytes()
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        self.timeline.append(self.live)
        weakref.finalize(storage, self._release, key, nbytes)


def training_step(network: torch.nn.Module, config: NetworkConfig, patch_size: list[int], batch_size: int,
                  dtype: torch.dtype, device, backward=None) -> None:
    """One forward + training loss + backward at ``batch_size`` x ``patch_size`` (the step the planner sizes).

    The loss is training's own (:mod:`autounet.network.loss`), on background labels at every output scale.
    ``backward(loss)`` replaces ``loss.backward()`` (e.g. to scale the loss for mixed precision).
    """
    images, targets = zero_batch(config, list(patch_size), batch_size, dtype, device)
    forward_backward(network, loss_for(config), images, targets, backward=backward)


def parameter_count(network: NetworkConfig) -> int:
    """Number of trainable parameters of the network ``network`` describes."""
    with torch.device("meta"):
        model = build_network(network, initialize=False)
    return sum(p.numel() for p in model.parameters())


def trace_step(network: NetworkConfig, patch_size: list[int], batch_size: int,
               dtype: torch.dtype) -> LiveBytesTracker:
    """Run one training step on the meta device and return the tracker of its tensor bytes."""
    with torch.device("meta"):
        model = build_network(network, initialize=False).to(dtype).train()
    tracker = LiveBytesTracker()
    with tracker:
        training_step(model, network, list(patch_size), batch_size, dtype, "meta")
    return tracker


def traced_step_bytes(network: NetworkConfig, patch_size: list[int], batch_size: int, dtype: torch.dtype) -> int:
    """Peak bytes of tensors created during one training step (activations, gradients, loss), on meta."""
    return trace_step(network, patch_size, batch_size, dtype).peak


@dataclass(frozen=True)
class StepMemoryProfile:
    """Live bytes over one training step of a network, as ``const + batch * per_sample + batch * v * per_voxel``.

    ``v`` is the patch's voxel count relative to ``unit_patch`` (twice the
    network's total downsampling per axis). Every tensor of the step is either
    independent of the input (weights, their gradients), proportional to the
    batch (normalisation statistics, per-sample loss terms) or proportional to
    batch x voxels (feature maps, since every stage's size is the patch divided
    by a fixed stride); three traces therefore determine all of them exactly.
    """

    unit_patch: tuple[int, ...]
    const: np.ndarray
    per_sample: np.ndarray
    per_voxel: np.ndarray
    persistent_bytes: int
    """Weights, optimiser state (and mixed-precision extras) that live outside the traced step."""

    def peak_bytes(self, patch_size, batch_size: int) -> float:
        v = float(np.prod(patch_size, dtype=float) / np.prod(self.unit_patch, dtype=float))
        live = self.const + batch_size * self.per_sample + batch_size * v * self.per_voxel
        return float(live.max()) + self.persistent_bytes


def _unit_patch(network: NetworkConfig) -> list[int]:
    # twice the downsampling: instance norm needs more than one voxel at the bottleneck
    return [2 * max(d, 1) for d in network.total_downsampling()]


@lru_cache(maxsize=256)
def _profile_cached(network_json: str, amp: bool) -> StepMemoryProfile | None:
    network = NetworkConfig(**json.loads(network_json))
    dtype = torch.float16 if amp else torch.float32
    unit = _unit_patch(network)
    doubled = [2 * unit[0], *unit[1:]]
    # batch 1 takes other code paths in some kernels, so the profile is fitted (and used) from batch 2 up
    base = trace_step(network, unit, 2, dtype).timeline
    more_samples = trace_step(network, unit, 4, dtype).timeline
    more_voxels = trace_step(network, doubled, 2, dtype).timeline
    if not len(base) == len(more_samples) == len(more_voxels):
        return None  # the step's allocations depend on the size: no linear profile, trace each request instead
    base, more_samples, more_voxels = (np.asarray(t, dtype=float) for t in (base, more_samples, more_voxels))
    per_voxel = (more_voxels - base) / 2
    per_sample = (more_samples - base) / 2 - per_voxel
    const = base - 2 * per_sample - 2 * per_voxel
    return StepMemoryProfile(tuple(unit), const, per_sample, per_voxel, persistent_bytes(network, amp))


def persistent_bytes(network: NetworkConfig, amp: bool) -> int:
    """Bytes that persist across steps and are not created by the traced step."""
    n_params = parameter_count(network)
    if amp:
        # fp32 master weights, fp32 gradients and momentum; the traced half-precision step holds the fp16 weight
        # gradients, standing in for autocast's fp16 weight copies.
        return n_params * 12
    return n_params * 8  # weights + momentum; the fp32 gradients are created inside the traced step


def tensor_bytes(network: NetworkConfig, patch_size, batch_size: int, amp: bool) -> float:
    """Peak bytes of tensors in one training step, persistent state included, without any margin."""
    key = json.dumps(asdict(network), sort_keys=True)
    profile = _profile_cached(key, bool(amp))
    unit = _unit_patch(network)
    if profile is not None and batch_size >= 2 and all(p % (u // 2) == 0 for p, u in zip(patch_size, unit)):
        return profile.peak_bytes(patch_size, batch_size)
    dtype = torch.float16 if amp else torch.float32
    return traced_step_bytes(network, list(patch_size), batch_size, dtype) + persistent_bytes(network, amp)


def with_margins_gb(tensor_bytes_peak: float) -> float:
    """GPU memory for a tensor peak: allocator overhead, cuDNN workspace and the CUDA context added."""
    return tensor_bytes_peak * (1 + ALLOCATOR_OVERHEAD) / GB + CUDNN_WORKSPACE_GB + CUDA_CONTEXT_GB


@lru_cache(maxsize=4096)
def _estimate_cached(network_json: str, patch: tuple[int, ...], batch_size: int, amp: bool) -> float:
    network = NetworkConfig(**json.loads(network_json))
    return with_margins_gb(tensor_bytes(network, patch, batch_size, amp))


def scaled_estimate_gb(reference: NetworkConfig, patch_size, batch_size: int, amp: bool = True) -> float:
    """A quick approximation for a similar network at another patch: ``reference``'s profile scaled by voxels.

    Exact for ``reference`` itself at patches divisible by its downsampling;
    used only to guide searches, whose answers are then checked exactly.
    """
    profile = _profile_cached(json.dumps(asdict(reference), sort_keys=True), bool(amp))
    if profile is None or batch_size < 2:
        return estimate_training_memory_gb(reference, patch_size, batch_size, amp)
    return with_margins_gb(profile.peak_bytes(patch_size, batch_size))


def estimate_training_memory_gb(network: NetworkConfig, patch_size, batch_size: int, amp: bool = True) -> float:
    """GPU memory (GiB) one SGD training step of ``network`` at ``batch_size`` x ``patch_size`` needs.

    Includes the CUDA context and workspace margins, so it compares directly
    with a GPU's total memory. Results are cached.

    Example:
        >>> cfg = NetworkConfig(3, 1, 3, [32, 64, 128, 256], [[3, 3, 3]] * 4,
        ...                     [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]])
        >>> round(estimate_training_memory_gb(cfg, [40, 56, 40], 2), 1)  # doctest: +SKIP
        1.1
    """
    key = json.dumps(asdict(network), sort_keys=True)
    return _estimate_cached(key, tuple(int(p) for p in patch_size), int(batch_size), bool(amp))


def memory_model_settings(amp: bool = True) -> dict:
    """The margins and precision the estimates in a plan were made with (stored in plans.json for reference)."""
    return {"mixed_precision": amp, "cuda_context_gb": CUDA_CONTEXT_GB, "cudnn_workspace_gb": CUDNN_WORKSPACE_GB,
            "allocator_overhead": ALLOCATOR_OVERHEAD}
