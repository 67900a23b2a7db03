"""Checkpoints as data: weights in safetensors, training state in JSON plus safetensors. Never pickle.

``state_latest.safetensors`` holds everything a resumed run needs in one
atomically replaced file: model and optimiser tensors, RNG states, and (in
its metadata) the JSON :class:`TrainingState`; ``state_latest.json`` is the same
state for people to read. ``model_{latest,best,final}.safetensors`` hold the
plain U-Net state_dict and nothing else, for inference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from autounet.errors import UserError
from autounet.utils.atomic import atomic_path, write_json
from autounet.utils.serde import load_dataclass, to_json_value

STATE_NAME = "state_latest"
_META_KEY = "training_state"


@dataclass
class EpochRecord:
    """One line of the training log."""

    epoch: int
    train_loss: float
    val_loss: float
    pseudo_dice: list[float]
    ema_pseudo_dice: float
    learning_rate: float
    seconds: float
    data_wait_share: float = 0.0
    """Share of the training iterations' time spent waiting for the next batch."""
    completed: bool = True
    """False when a time budget stopped the epoch before all its iterations (it is then the run's last)."""
    training_seconds: float = 0.0
    """Wall time of the epoch's training iterations alone (``seconds`` adds its pseudo-Dice validation); 0 in
    logs written before it was recorded."""
    iterations: int = 0
    """Training iterations the epoch ran (fewer than the schedule's when cut short); 0 in older logs."""


@dataclass
class TrainingState:
    """Where a run stands after ``epochs_done`` epochs (the data stream resumes from this position)."""

    configuration: str
    fold: int | str
    epochs_done: int = 0
    ema_pseudo_dice: float | None = None
    best_ema_pseudo_dice: float | None = None
    best_epoch: int | None = None
    grad_scaler: dict[str, float] = field(default_factory=dict)
    log: list[EpochRecord] = field(default_factory=list)


def save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state_dict to ``path`` as safetensors, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read weights from safetensors, or from a torch file that loads with ``weights_only=True``.

    A pickle that needs code to run is refused with a :class:`UserError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file.")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise UserError(f"{path}: is not a valid safetensors file ({error}).") from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any refusal by the safe unpickler means: not plain weights
        raise UserError(f"{path}: refused: it is not plain weights that load with weights_only=True (a pickle "
                        f"that would run code?). Use a .safetensors file.") from error
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(f"{path}: holds no plain state_dict of tensors.")
    return loaded


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = value
    return tensors


def save_training_state(folder: Path, state: TrainingState, model_state: dict[str, torch.Tensor],
                        optimizer: torch.optim.Optimizer) -> None:
    """Write ``state_latest.safetensors`` (the resume point, one atomic file) and ``state_latest.json``."""
    optimizer_tensors, optimizer_rest = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors.update(optimizer_tensors)
    tensors.update(_rng_tensors())
    record = {"state": to_json_value(state), "optimizer": optimizer_rest}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(Path(folder) / f"{STATE_NAME}.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(record)})
    write_json(Path(folder) / f"{STATE_NAME}.json", record)


def restore_state_record(folder: Path) -> None:
    """Rewrite ``state_latest.json`` from the resume point's own copy of it (the safetensors metadata), for a run
    killed between writing the two."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / f"{STATE_NAME}.safetensors"), framework="pt") as handle:
        record = json.loads(handle.metadata()[_META_KEY])
    write_json(Path(folder) / f"{STATE_NAME}.json", record)


@dataclass
class ResumePoint:
    """What :func:`load_training_state` gives back."""

    state: TrainingState
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict
    rng: dict[str, torch.Tensor]


def has_training_state(folder: Path) -> bool:
    return (Path(folder) / f"{STATE_NAME}.safetensors").is_file()


def load_training_state(folder: Path) -> ResumePoint:
    """Read the resume point written by :func:`save_training_state`."""
    path = Path(folder) / f"{STATE_NAME}.safetensors"
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            record = json.loads(handle.metadata()[_META_KEY])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: is not a training state autounet wrote ({error}); start again without "
                        f"--resume.") from error
    state = load_dataclass(TrainingState, record["state"])
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizer_state: dict = {"state": {}, "param_groups": record["optimizer"]["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    for key, value in record["optimizer"]["scalars"].items():
        index, name = key.split(".", 1)
        optimizer_state["state"].setdefault(int(index), {})[name] = value
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return ResumePoint(state, model_state, optimizer_state, rng)


def restore_rng(rng: dict[str, torch.Tensor]) -> None:
    if "rng.torch" in rng:
        torch.set_rng_state(rng["rng.torch"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
