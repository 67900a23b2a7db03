"""Typed dataclasses <-> plain JSON values.

``to_json_value`` turns a dataclass (with nested dataclasses, lists, tuples and
dicts) into JSON-ready values; ``from_json_value`` rebuilds it from the type
hints, so plans and fingerprints are never passed around as dicts of dicts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")


def to_json_value(obj: Any) -> Any:
    """Convert a dataclass (or containers of them) to JSON-compatible values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def from_json_value(tp: Any, value: Any) -> Any:
    """Build a value of type ``tp`` from JSON data, recursing through dataclasses and containers.

    Unknown keys of a dataclass are ignored so that older readers can open newer files.
    """
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return from_json_value(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        kwargs = {f.name: from_json_value(hints[f.name], value[f.name])
                  for f in dataclasses.fields(tp) if f.name in value}
        return tp(**kwargs)
    if origin in (list, typing.List):
        (item_tp,) = get_args(tp) or (Any,)
        return [from_json_value(item_tp, v) for v in value]
    if origin in (tuple, typing.Tuple):
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json_value(args[0], v) for v in value)
        if args:
            return tuple(from_json_value(a, v) for a, v in zip(args, value))
        return tuple(value)
    if origin in (dict, typing.Dict):
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {from_json_value(key_tp, k): from_json_value(val_tp, v) for k, v in value.items()}
    if tp is float and isinstance(value, int):
        return float(value)
    if tp is int and isinstance(value, str):
        return int(value)
    return value


def load_dataclass(cls: type[T], data: dict) -> T:
    """Rebuild dataclass ``cls`` from parsed JSON ``data``."""
    return from_json_value(cls, data)
