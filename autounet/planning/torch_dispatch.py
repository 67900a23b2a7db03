"""The one private torch API autounet uses, kept here so a torch release that changes it fails in one place.

The memory model watches every tensor one training step creates on the meta device. Only a dispatch mode sees
them all, and torch offers its base class, ``TorchDispatchMode``, only from the private module
``torch.utils._python_dispatch`` (documented in torch's "extending torch" notes, but not under a public name).
tests/planning/test_torch_dispatch.py checks the behaviour the memory model relies on.
"""

from __future__ import annotations

import torch

try:
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError as error:  # pragma: no cover - only on a torch release that moved it
    raise ImportError(f"torch {torch.__version__} has no torch.utils._python_dispatch.TorchDispatchMode, which "
                      f"autounet's memory model (autounet/planning/memory.py) needs; install a torch release that has "
                      f"it or update autounet/planning/torch_dispatch.py.") from error

__all__ = ["TorchDispatchMode", "tensors_in"]


def tensors_in(value) -> list[torch.Tensor]:
    """The tensors in an operator's result: a tensor, or tensors nested in tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    return []
