"""Rendering results through a botocore output shape, as AWS JSON 1.1 writes them.

Timestamps go out as epoch seconds with milliseconds (1700000000.123), blobs as base64 text,
structures with only the members their shape has. A value that does not fit its shape is a bug
in ecrd, so it raises ValueError naming where, rather than sending clients what the model does
not describe.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.model import ListShape, MapShape, Shape


def serialize_output(shape: Shape | None, value: Any) -> Any:
    """Render an operation's result (or an error's members) as the JSON the model describes.

    Timestamps (datetime, naive taken as UTC) become epoch seconds, blobs (bytes) base64 text,
    structures keep only the members the shape has with None values omitted, lists and maps
    are rendered element by element. A structure key the shape lacks, or a value of the wrong
    type, raises ValueError. An operation without an output shape renders as {}.
    """
    if shape is None:
        return {}
    return _serialize(shape, value, shape.name)


def _serialize(shape: Shape, value: Any, path: str) -> Any:
    render = _RENDERERS.get(shape.type_name)
    # Types these models do not use (document) are any JSON already.
    return value if render is None else render(shape, value, path)


def _structure(shape: Shape, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _mismatch(path, "a mapping", value)
    output = {}
    for name, item in value.items():
        member_shape = shape.members.get(name)
        if member_shape is None:
            raise ValueError(f"{path}: {shape.name} has no member {name!r}")
        if item is not None:
            output[name] = _serialize(member_shape, item, f"{path}.{name}")
    return output


def _list(shape: ListShape, value: Any, path: str) -> list[Any]:
    # A str is iterable too, and would go out as a list of letters.
    if not isinstance(value, list | tuple):
        raise _mismatch(path, "a list", value)
    return [_serialize(shape.member, item, f"{path}[{index}]") for index, item in enumerate(value)]


def _map(shape: MapShape, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _mismatch(path, "a mapping", value)
    return {
        _serialize(shape.key, key, f"{path} key"): _serialize(shape.value, item, f"{path}[{key!r}]")
        for key, item in value.items()
    }


def _string(shape: Shape, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _mismatch(path, "a str", value)
    # A str-valued enum member goes out as its plain value.
    return str.__str__(value)


def _integer(shape: Shape, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mismatch(path, "an int", value)
    return int(value)


def _float(shape: Shape, value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(path, "a number", value)
    return value


def _boolean(shape: Shape, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _mismatch(path, "a bool", value)
    return value


def _blob(shape: Shape, value: Any, path: str) -> str:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _mismatch(path, "bytes", value)
    return base64.b64encode(value).decode("ascii")


def _timestamp(shape: Shape, value: Any, path: str) -> float:
    """Epoch seconds; AWS sends millisecond precision, and rounding keeps the float's text short."""
    if not isinstance(value, datetime):
        raise _mismatch(path, "a datetime", value)
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return round(moment.timestamp(), 3)


def _mismatch(path: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{path}: expected {expected}, got {type(value).__name__}")


_RENDERERS: dict[str, Callable[[Any, Any, str], Any]] = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "boolean": _boolean,
    "blob": _blob,
    "timestamp": _timestamp,
}
