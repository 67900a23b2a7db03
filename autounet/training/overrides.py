"""``--set NAME=VALUE``: change any field of the training config, nested ones too, from the command line."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_type_hints

from autounet.errors import UserError
from autounet.training.config import TrainingConfig
from autounet.utils.serde import from_json_value, to_json_value

NOT_SETTABLE = ("configuration", "fold", "budget", "time_budget_seconds", "budget_timing")
"""Fields chosen by other options or written by training itself."""


def settable_names(cls: type = TrainingConfig, prefix: str = "") -> list[str]:
    """Every name ``--set`` takes: ``learning_rate``, ``augmentation.p_rotation``, ``loss_weights.dice``, ...

    Example:
        >>> "augmentation.p_rotation" in settable_names() and "budget_timing" not in settable_names()
        True
    """
    names = []
    hints = get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if not prefix and item.name in NOT_SETTABLE:
            continue
        if dataclasses.is_dataclass(hints[item.name]):
            names += settable_names(hints[item.name], f"{prefix}{item.name}.")
        else:
            names.append(prefix + item.name)
    return names


def _value(text: str) -> Any:
    """VALUE as JSON, or as a plain word when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word such as adamw


def apply_settings(config: TrainingConfig, assignments: list[str]) -> TrainingConfig:
    """``config`` with each ``NAME=VALUE`` of ``assignments`` applied (VALUE as JSON: 0.3, true, [0.7, 1.4]).

    Example:
        >>> apply_settings(TrainingConfig(), ["augmentation.p_rotation=0.3"]).augmentation.p_rotation
        0.3
    """
    data = to_json_value(config)
    known = set(settable_names())
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise UserError(f"--set '{assignment}': write NAME=VALUE with a training config field as NAME (e.g. "
                            f"augmentation.p_rotation=0.3; fields are listed in docs/train.md).")
        *parents, leaf = name.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[leaf] = _value(text.strip())
    try:
        updated = from_json_value(TrainingConfig, data)
    except (TypeError, ValueError) as error:
        raise UserError(f"--set: a value does not fit its field ({error}).") from error
    _check_types(updated)
    return updated


def _check_types(config: TrainingConfig, prefix: str = "") -> None:
    """A clear error for a value of the wrong kind (a word where a number belongs)."""
    hints = get_type_hints(type(config))
    for item in dataclasses.fields(config):
        value, hint = getattr(config, item.name), hints[item.name]
        if dataclasses.is_dataclass(hint):
            _check_types(value, f"{prefix}{item.name}.")
        elif hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"--set {prefix}{item.name}: '{value}' is not a number.")
        elif hint is bool and not isinstance(value, bool):
            raise UserError(f"--set {prefix}{item.name}: '{value}' is not true or false.")
