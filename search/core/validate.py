"""Checking plain data (JSON, TOML) against the run config's dataclasses: each field's
type annotation is the one list of what it allows (``Literal`` choices included), and a
value that does not fit is a ``ConfigError`` naming where it was and what was expected."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

from search.errors import ConfigError

__all__ = ["fail", "require", "field_names", "field_type", "section_from_dict", "check_value"]


def fail(where: str, expected: str, value: Any) -> typing.NoReturn:
    raise ConfigError(f"{where}: expected {expected}, received {value!r}")


def require(ok: bool, where: str, expected: str, value: Any) -> None:
    if not ok:
        fail(where, expected, value)


def field_names(section_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(section_cls)]


def field_type(section_cls: type, name: str) -> Any:
    return typing.get_type_hints(section_cls)[name]


def section_from_dict(section_cls: type, raw: dict[str, Any], where: str) -> Any:
    names = field_names(section_cls)
    values = {}
    for key, value in raw.items():
        if key not in names:
            fail(where, "keys " + ", ".join(names), key)
        values[key] = check_value(field_type(section_cls, key), value, f"{where}.{key}")
    return section_cls(**values)


def check_value(annotation: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a field's type annotation; return it (ints widened to float)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        # bool is an int in Python: True must not pass for the choice 1.
        if any(value == a and type(value) is type(a) for a in args):
            return value
        fail(where, "one of " + ", ".join(repr(a) for a in args), value)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return check_value(inner[0], value, where)
    if annotation is bool:
        require(isinstance(value, bool), where, "true or false", value)
        return value
    if annotation is int:
        require(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
        return value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        require(ok, where, "a number", value)
        return float(value)
    if origin is dict:
        require(isinstance(value, dict) and all(isinstance(k, str) for k in value), where, "a table", value)
        return dict(value)
    if annotation is str:
        require(isinstance(value, str), where, "a string", value)
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")
