"""Checking requests against the botocore model: types, required members, lengths, ranges,
patterns and enums, with AWS's wording for the first violation."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape, StructureShape  # type: ignore[import-untyped]


class ParameterInvalid(Exception):
    """A request member breaks a constraint of the service model.

    `member` is AWS's path: list items as `<list>.<n>.member` (1-based), map values as
    `<map>.<key>`.
    """

    def __init__(self, member: str, constraint: str, value: object) -> None:
        super().__init__(f"{member}: {constraint}")
        self.member = member
        self.constraint = constraint
        self.value = value

    def invalid_parameter_message(self) -> str:
        return (
            f"Invalid parameter at '{self.member}' failed to satisfy constraint: "
            f"'{self.constraint}'"
        )

    def validation_message(self) -> str:
        value = "null" if self.value is None else f"'{str(self.value)[:100]}'"
        return (
            f"1 validation error detected: Value {value} at '{self.member}' failed to satisfy "
            f"constraint: Member {self.constraint}"
        )


def validate_input(shape: StructureShape | None, params: object) -> dict[str, Any]:
    """Check `params` against the input shape; return a clean copy (known members only, nulls
    dropped, blobs decoded, timestamps as UTC datetimes). ParameterInvalid on the first
    violation."""
    if shape is None:
        return {}
    if not isinstance(params, dict):
        raise ParameterInvalid("", "must be a JSON object", None)
    result: dict[str, Any] = _check(shape, params, "")
    return result


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: leave that pattern unchecked
        return None


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _check(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ParameterInvalid(path, "must be a structure", value)
        for required in shape.required_members:
            if value.get(required) is None:
                raise ParameterInvalid(_path(path, required), "must not be null", None)
        return {
            name: _check(shape.members[name], item, _path(path, name))
            for name, item in value.items()
            if name in shape.members and item is not None
        }
    if kind == "list":
        if not isinstance(value, list):
            raise ParameterInvalid(path, "must be a list", value)
        _check_length(shape, len(value), path, value)
        return [
            _check(shape.member, item, f"{path}.{index}.member")
            for index, item in enumerate(value, start=1)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise ParameterInvalid(path, "must be a map", value)
        _check_length(shape, len(value), path, value)
        return {
            _check(shape.key, key, path): _check(shape.value, item, f"{path}.{key}")
            for key, item in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            raise ParameterInvalid(path, "must be a string", value)
        _check_length(shape, len(value), path, value)
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            raise ParameterInvalid(path, f"must satisfy enum value set: [{', '.join(enum)}]", value)
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            raise ParameterInvalid(
                path, f"must satisfy regular expression pattern: {pattern}", value
            )
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterInvalid(path, "must be an integer", value)
        _check_range(shape, value, path)
        return value
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ParameterInvalid(path, "must be a number", value)
        _check_range(shape, value, path)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ParameterInvalid(path, "must be a boolean", value)
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise ParameterInvalid(path, "must be base64-encoded", value)
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ParameterInvalid(path, "must be base64-encoded", value[:100]) from None
        _check_length(shape, len(decoded), path, "<blob>")
        return decoded
    if kind == "timestamp":
        return _timestamp(value, path)
    return value


def _timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ParameterInvalid(path, "must be a timestamp", value)


def _check_length(shape: Shape, length: int, path: str, value: object) -> None:
    minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
    if minimum is not None and length < minimum:
        raise ParameterInvalid(path, f"must have length greater than or equal to {minimum}", value)
    if maximum is not None and length > maximum:
        raise ParameterInvalid(path, f"must have length less than or equal to {maximum}", value)


def _check_range(shape: Shape, number: float, path: str) -> None:
    minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
    if minimum is not None and number < minimum:
        raise ParameterInvalid(path, f"must have value greater than or equal to {minimum}", number)
    if maximum is not None and number > maximum:
        raise ParameterInvalid(path, f"must have value less than or equal to {maximum}", number)
