"""Typed dataclasses <-> plain JSON values, strictly.

``to_json_value`` turns a dataclass (with nested dataclasses, lists, tuples and
dicts) into JSON-ready values; ``from_json_value`` rebuilds it from the type
hints, so plans and fingerprints are never passed around as dicts of dicts.

Loading is strict, because a hand-edited file whose key is misspelt must not be
silently ignored: an unknown key, a value of the wrong type, a missing required
field, or a ``schema_version`` newer than the dataclass's default is a
:class:`~autounet.errors.SchemaError` naming the key (``configurations.2d.batch_size``).
Fields added since a file was written take their defaults, so older files keep
loading. A field typed plain ``dict``, ``list`` or ``Any`` stays free-form.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from autounet.errors import SchemaError

T = TypeVar("T")

SCHEMA_FIELD = "schema_version"
_JSON_NAMES = {dict: "an object", list: "a list", str: "text", bool: "true or false", int: "a whole number",
               float: "a number"}


def to_json_value(obj: Any) -> Any:
    """Convert a dataclass (or containers of them) to JSON-compatible values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def from_json_value(tp: Any, value: Any, where: str = "") -> Any:
    """Build a value of type ``tp`` from JSON data, recursing through dataclasses and containers.

    ``where`` is the key path of ``value`` in its file, for error messages. Raises :class:`SchemaError` (also a
    ``TypeError``) when the data does not fit ``tp``.

    Example:
        >>> from_json_value(list[float], [1, 2.5])
        [1.0, 2.5]
    """
    if tp is Any or tp is object:
        return value
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(tp, value, where)
    if value is None:
        raise _mismatch(tp, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise SchemaError(f"{_at(where)}is {json.dumps(value)}; it must be one of "
                              f"{', '.join(json.dumps(a) for a in get_args(tp))}.")
        return value
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where)
    if origin in (list, typing.List) or tp is list:
        _expect(value, list, tp, where)
        (item_tp,) = get_args(tp) or (Any,)
        return [from_json_value(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, typing.Tuple) or tp is tuple:
        _expect(value, list, tp, where, also=tuple)
        return _tuple(tp, value, where)
    if origin in (dict, typing.Dict) or tp is dict:
        _expect(value, dict, tp, where)
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {_key(key_tp, k, where): from_json_value(val_tp, v, _join(where, str(k))) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise SchemaError(f"{_at(where)}is {json.dumps(value)}; it must be one of "
                              f"{', '.join(json.dumps(m.value) for m in tp)}.") from None
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _mismatch(tp, value, where)
    if tp is int or tp is str or tp is bool:
        if type(value) is tp:
            return value
        raise _mismatch(tp, value, where)
    if tp is Path:
        _expect(value, str, tp, where)
        return Path(value)
    return value


def load_dataclass(cls: type[T], data: dict, partial: bool = False) -> T:
    """Rebuild dataclass ``cls`` from parsed JSON ``data`` (strictly; see the module's docstring).

    ``partial``: ``cls`` reads only some of the file's top-level keys (e.g. which fold a training config is
    for) and leaves the others to their own reader, so keys it does not know are not errors there.
    """
    if partial and isinstance(data, dict) and dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in names}
    return from_json_value(cls, data)


def load_json_file(cls: type[T], path: Path, fix: str) -> T:
    """Read ``path`` as JSON into dataclass ``cls``; any problem is one sentence naming the file, the key and
    ``fix`` (e.g. "run `autounet preprocess --overwrite`").

    Example:
        >>> load_json_file(CaseProperties, Path("case_001.json"), "run `autounet preprocess --overwrite`")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: is missing; {fix}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SchemaError(f"{path}: is not readable JSON ({error}); {fix}.") from error
    try:
        return load_dataclass(cls, data)
    except SchemaError as error:
        raise SchemaError(f"{path}: {error} Fix the key by hand or {fix}.") from error


def _dataclass(tp: type, value: Any, where: str) -> Any:
    _expect(value, dict, tp, where)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise SchemaError(f"{_at(_join(where, unknown[0]))}is not a key of {tp.__name__} (known: "
                          f"{', '.join(fields)}); it may be misspelt.")
    _check_version(tp, fields, value, where)
    hints = get_type_hints(tp)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = from_json_value(hints[name], value[name], _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{_at(where) or ''}the required key '{_join(where, name)}' ({tp.__name__}) is "
                              f"missing.")
    return tp(**kwargs)


def _check_version(tp: type, fields: dict, value: dict, where: str) -> None:
    """Refuse a file written by a newer autounet: its meaning may have changed in ways this code cannot read."""
    field = fields.get(SCHEMA_FIELD)
    if field is None or not isinstance(field.default, int) or SCHEMA_FIELD not in value:
        return
    found = value[SCHEMA_FIELD]
    if isinstance(found, int) and not isinstance(found, bool) and found > field.default:
        raise SchemaError(f"{_at(_join(where, SCHEMA_FIELD))}is {found}, newer than this autounet reads (up to "
                          f"{field.default} for {tp.__name__}); update autounet.")


def _union(tp: Any, value: Any, where: str) -> Any:
    args = get_args(tp)
    if value is None:
        if type(None) in args or Any in args:
            return None
        raise _mismatch(tp, value, where)
    candidates = [a for a in args if a is not type(None)]
    errors = []
    for candidate in candidates:
        try:
            return from_json_value(candidate, value, where)
        except SchemaError as error:
            errors.append(error)
    if len(candidates) == 1:
        raise errors[0]
    raise _mismatch(tp, value, where)


def _tuple(tp: Any, value: list, where: str) -> tuple:
    args = get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(from_json_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if not args:
        return tuple(value)
    if len(args) != len(value):
        raise SchemaError(f"{_at(where)}has {len(value)} values; it must have {len(args)}.")
    return tuple(from_json_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))


def _key(tp: Any, key: str, where: str) -> Any:
    """JSON object keys are text; a dict typed with int keys gets them back as ints."""
    if tp is int:
        try:
            return int(key)
        except ValueError:
            raise SchemaError(f"{_at(_join(where, key))}is not a whole-number key.") from None
    return from_json_value(tp, key, _join(where, key)) if tp is not Any else key


def _expect(value: Any, json_type: type, tp: Any, where: str, also: type | None = None) -> None:
    if not isinstance(value, json_type) and not (also and isinstance(value, also)):
        raise _mismatch(tp, value, where)


def _mismatch(tp: Any, value: Any, where: str) -> SchemaError:
    return SchemaError(f"{_at(where)}is {_describe(value)}, not {_type_name(tp)}.")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in get_args(tp) else "")
    if dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__})"
    base = origin or tp
    if base is tuple:
        base = list
    return _JSON_NAMES.get(base, getattr(base, "__name__", str(base)))


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _at(where: str) -> str:
    return f"key '{where}' " if where else "the file "
