"""Turns the domain's frozen dataclasses into JSON-ready dicts and back, by their type hints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from functools import cache
from typing import Any


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(kind: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return decode(options[0], data)
    if origin is tuple:
        args = typing.get_args(kind)
        return tuple(decode(args[0], item) for item in data)
    if origin is list:
        return [decode(typing.get_args(kind)[0], item) for item in data]
    if origin is dict:
        _, value_kind = typing.get_args(kind)
        return {key: decode(value_kind, item) for key, item in data.items()}
    supertype = getattr(kind, "__supertype__", None)
    if supertype is not None:  # NewType
        return decode(supertype, data)
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind)
            names = {f.name for f in dataclasses.fields(kind) if f.init}
            return kind(**{name: decode(hints[name], value) for name, value in data.items() if name in names})
        if issubclass(kind, enum.Enum):
            return kind(data)
        if kind is dt.datetime:
            return dt.datetime.fromisoformat(data)
    return data
