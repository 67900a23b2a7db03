"""Reading nnU-Net's ``checkpoint_*.pth`` files without running code from them.

The files are pickles. They are opened with ``torch.load(weights_only=True)``, which rebuilds only tensors and
plain containers; beyond those, only the numpy scalars and dtypes nnU-Net stores (its logged metrics) are allowed.
Any other object in the pickle (a function to call, a class to build) stops the load before it is used.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

from autounet.errors import UserError


def _numpy_globals() -> list:
    """The numpy callables nnU-Net's checkpoints reference, under their numpy 1 and numpy 2 names."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                     np.dtype]
    dtype_classes = getattr(np, "dtypes", None)
    if dtype_classes is not None:
        allowed += [getattr(dtype_classes, name) for name in dtype_classes.__all__]
    return allowed


def _refused_global(message: str) -> str | None:
    """The name of the global the weights-only unpickler refused, if that is why it stopped."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else None


def load_nnunet_checkpoint(path: Path) -> dict:
    """The checkpoint dict of an nnU-Net ``.pth`` file (``network_weights``, ``trainer_name``, ``init_args``, ...).

    Raises :class:`UserError` (one sentence) for files that are not checkpoints or that hold any object other
    than tensors, containers, numbers, strings, ``torch.device`` and numpy scalars; such objects are never built.
    """
    import torch

    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_global(str(error))
        if refused:
            raise UserError(f"{path}: refused: the checkpoint holds '{refused}', which is not a tensor or numpy "
                            f"number and could run code when unpickled; nothing from it was executed.") from error
        found = re.search(r"Unsupported ([^\n]+)", str(error))
        raise UserError(f"{path}: not a readable PyTorch checkpoint (the weights-only unpickler stopped at: "
                        f"{found.group(1).strip() if found else 'an unknown instruction'}).") from error
    except (OSError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({str(error).splitlines()[0][:160]}).") from error
    weights = checkpoint.get("network_weights") if isinstance(checkpoint, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserError(f"{path}: not an nnU-Net checkpoint (no 'network_weights' dict of tensors).")
    return checkpoint
