"""Typed dataclasses with float scores to and from JSON files: NaN (an undefined score) is stored as null."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from autounet.utils.atomic import write_json
from autounet.utils.serde import load_dataclass, to_json_value

T = TypeVar("T")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _none_to_nan(tp: Any, value: Any) -> Any:
    """A null where the type hint says ``float`` becomes NaN (recursively through dataclasses and containers)."""
    if tp is float and value is None:
        return math.nan
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = get_type_hints(tp)
        return {k: _none_to_nan(hints[k], v) if k in hints else v for k, v in value.items()}
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and isinstance(value, list):
        return [_none_to_nan(args[0], v) for v in value]
    if origin is dict and isinstance(value, dict):
        return {k: _none_to_nan(args[1], v) for k, v in value.items()}
    return value


def save_scores_json(path: Path, obj: Any) -> None:
    """Write dataclass ``obj`` as JSON to ``path`` atomically, NaN as null."""
    write_json(path, _nan_to_none(to_json_value(obj)))


def load_scores_json(cls: type[T], path: Path) -> T:
    """Read a file written by :func:`save_scores_json` back into dataclass ``cls``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return load_dataclass(cls, _none_to_nan(cls, data))
