"""Request validation against a botocore input shape, as AWS's front end does it.

A request is decoded JSON; `validate_input` walks it alongside the operation's input shape and
returns a clean copy, or raises `ParameterInvalid` for the first member that breaks the model.

Member paths follow AWS's messages:

    repositoryName                   a structure member
    imageIds.1.member                an element of a list (1-based)
    imageIds.1.member.imageTag       a member of a structure inside a list
    annotations.<key>                the value stored under <key> in a map
    annotations                      a map whose key (the offending value) breaks the key shape
    ""                               the request body as a whole
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.model import (
    ListShape,
    MapShape,
    Shape,
    StructureShape,
)

logger = logging.getLogger("ecrd.aws")

# Longest rendering of an offending value in a ValidationException message; AWS cuts there too.
_MAX_RENDERED_VALUE = 100
_ENUM_CONSTRAINT = "must satisfy enum value set: "
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

# Model patterns that Python's backtracking engine would take exponential time to reject, each
# with an equivalent that runs in linear time. The message still quotes the model's pattern.
# ScanningRepositoryFilterValue: an optional separator that may also be a letter, then letters,
# repeated, splits "aaaa...!" in 2^n ways. The rewrite reads: a letter, then (an optional
# separator and a letter) repeated, which is the same language: no two separators in a row,
# none at the end.
_LINEAR_EQUIVALENTS = {
    r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$": r"^[a-z0-9*](?:[._\-/]?[a-z0-9*])*$",
}


class ParameterInvalid(Exception):
    """A request member breaks a constraint of the service model.

    `member` is the member's path (see the module docstring), `constraint` the broken rule in
    AWS's words ("must have length less than or equal to 256"), `value` the offending value,
    None when it is missing. A broken map key reads "Map keys must satisfy constraint: [Member
    ...]" at the map's path, as AWS words it.
    """

    def __init__(self, member: str, constraint: str, value: object = None) -> None:
        super().__init__(f"{member or 'request'}: {constraint}")
        self.member = member
        self.constraint = constraint
        self.value = value

    def invalid_parameter_message(self) -> str:
        """ECR's InvalidParameterException message.

        ECR quotes most constraints bare ('must have length less than or equal to 256') but
        an enum's as the validation layer words it ('Member must satisfy enum value set:
        [...]'), so that one keeps its subject here too.
        """
        where = f"at '{self.member}'" if self.member else "in the request body"
        subject = "Member " if self.constraint.startswith(_ENUM_CONSTRAINT) else ""
        return (
            f"Invalid parameter {where} failed to satisfy constraint: '{subject}{self.constraint}'"
        )

    def validation_message(self) -> str:
        """AWS's ValidationException message, the value cut to about 100 characters."""
        value = "null" if self.value is None else f"'{_render(self.value)}'"
        where = f"at '{self.member}'" if self.member else "in the request body"
        # Key constraints read as a sentence of their own, as Coral words them.
        subject = "" if self.constraint.startswith("Map keys") else "Member "
        return (
            f"1 validation error detected: Value {value} {where} "
            f"failed to satisfy constraint: {subject}{self.constraint}"
        )


def validate_input(shape: StructureShape | None, params: object) -> dict[str, Any]:
    """Check `params` (decoded JSON) against an operation's input shape; return a clean copy.

    The copy has only members the shape has (AWS ignores unknown ones), no null members (a
    null list element or map value is refused), blobs decoded to bytes and timestamps as aware
    UTC datetimes. Raises ParameterInvalid for the first violation, members taken in the
    model's order. An operation without input shape accepts anything and gets {}.
    """
    if shape is None:
        return {}
    if not isinstance(params, dict):
        raise ParameterInvalid("", "must be a JSON object", params)
    return _structure(shape, params, "")


def _validate(shape: Shape, value: object, path: str) -> Any:
    """`value` (never None) checked against `shape`, in the form the operations receive."""
    check = _CHECKS.get(shape.type_name)
    # Types these models do not use (document) carry any JSON: nothing to check.
    return value if check is None else check(shape, value, path)


def _structure(shape: Shape, value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterInvalid(path, "must be a structure (JSON object)", value)
    required = set(shape.required_members)
    clean: dict[str, Any] = {}
    for name, member_shape in shape.members.items():
        member_path = f"{path}.{name}" if path else name
        member_value = value.get(name)
        if member_value is None:
            if name in required:
                raise ParameterInvalid(member_path, "must not be null")
            continue
        clean[name] = _validate(member_shape, member_value, member_path)
    return clean


def _list(shape: ListShape, value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParameterInvalid(path, "must be a list (JSON array)", value)
    _check_length(shape, len(value), value, path)
    clean = []
    for index, element in enumerate(value, start=1):
        element_path = f"{path}.{index}.member"
        if element is None:
            raise ParameterInvalid(element_path, "must not be null")
        clean.append(_validate(shape.member, element, element_path))
    return clean


def _map(shape: MapShape, value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterInvalid(path, "must be a map (JSON object)", value)
    _check_length(shape, len(value), value, path)
    clean = {}
    for key, element in value.items():
        try:
            _validate(shape.key, key, path)
        except ParameterInvalid as invalid:
            constraint = f"Map keys must satisfy constraint: [Member {invalid.constraint}]"
            raise ParameterInvalid(path, constraint, key) from None
        element_path = f"{path}.{key}"
        if element is None:
            raise ParameterInvalid(element_path, "must not be null")
        clean[key] = _validate(shape.value, element, element_path)
    return clean


def _string(shape: Shape, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ParameterInvalid(path, "must be a string", value)
    enum = shape.enum
    if enum and value not in enum:
        raise ParameterInvalid(path, f"{_ENUM_CONSTRAINT}[{', '.join(enum)}]", value)
    # Length before pattern: the model's maximum bounds the work the pattern does.
    _check_length(shape, len(value), value, path)
    pattern_text = shape.metadata.get("pattern")
    if pattern_text is not None:
        pattern = _compiled_pattern(pattern_text)
        if pattern is not None and pattern.fullmatch(value) is None:
            raise ParameterInvalid(
                path, f"must satisfy regular expression pattern: {pattern_text}", value
            )
    return value


def _integer(shape: Shape, value: object, path: str) -> int:
    low, high = _INT64 if shape.type_name == "long" else _INT32
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterInvalid(path, "must be an integer", value)
    # Outside the wire type's range AWS fails to read the number at all.
    if not low <= value <= high:
        bits = 64 if shape.type_name == "long" else 32
        raise ParameterInvalid(path, f"must be a {bits}-bit integer", value)
    _check_value(shape, value, path)
    return value


def _float(shape: Shape, value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterInvalid(path, "must be a number", value)
    # Python's json accepts NaN and Infinity, which JSON itself does not.
    if not math.isfinite(value):
        raise ParameterInvalid(path, "must be a finite number", value)
    _check_value(shape, value, path)
    return float(value)


def _boolean(shape: Shape, value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ParameterInvalid(path, "must be a boolean", value)
    return value


def _blob(shape: Shape, value: object, path: str) -> bytes:
    if not isinstance(value, str):
        raise ParameterInvalid(path, "must be base64-encoded", value)
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ParameterInvalid(path, "must be base64-encoded", value) from None
    _check_length(shape, len(decoded), decoded, path)
    return decoded


def _timestamp(shape: Shape, value: object, path: str) -> datetime:
    """Epoch seconds (the AWS JSON form) or ISO-8601 text; naive text is taken as UTC."""
    constraint = "must be a timestamp (epoch seconds or ISO-8601)"
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise ParameterInvalid(path, constraint, value) from None
    raise ParameterInvalid(path, constraint, value)


def _check_length(shape: Shape, length: int, value: object, path: str) -> None:
    """Characters of a string, bytes of a blob, elements of a list or map."""
    minimum = shape.metadata.get("min")
    maximum = shape.metadata.get("max")
    if minimum is not None and length < minimum:
        raise ParameterInvalid(path, f"must have length greater than or equal to {minimum}", value)
    if maximum is not None and length > maximum:
        raise ParameterInvalid(path, f"must have length less than or equal to {maximum}", value)


def _check_value(shape: Shape, value: float, path: str) -> None:
    minimum = shape.metadata.get("min")
    maximum = shape.metadata.get("max")
    if minimum is not None and value < minimum:
        raise ParameterInvalid(path, f"must have value greater than or equal to {minimum}", value)
    if maximum is not None and value > maximum:
        raise ParameterInvalid(path, f"must have value less than or equal to {maximum}", value)


@functools.lru_cache(maxsize=256)
def _compiled_pattern(pattern_text: str) -> re.Pattern[str] | None:
    """The model's (Java) pattern compiled for Python; None when Python cannot read it.

    re.ASCII gives \\w, \\d and \\s their Java meaning. A pattern Python rejects, or reads
    differently (it warns on Java's `&&` and similar class syntax), is skipped rather than
    enforced wrongly: the operations check what they depend on themselves.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            return re.compile(_LINEAR_EQUIVALENTS.get(pattern_text, pattern_text), re.ASCII)
    except (re.error, FutureWarning) as error:
        logger.warning("model pattern %r not enforced: %s", pattern_text, error)
        return None


def _render(value: object) -> str:
    """`value` as Java's toString shows it in AWS's messages, cut near 100 characters."""
    text = ""
    for piece in _pieces(value):
        text += piece
        if len(text) > _MAX_RENDERED_VALUE:
            return text[:_MAX_RENDERED_VALUE] + "..."
    return text


def _pieces(value: object) -> Iterator[str]:
    """`value`'s rendering piece by piece, lazily, so a huge member costs only what is shown."""
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield value[: _MAX_RENDERED_VALUE + 1]
    elif isinstance(value, bytes):
        yield f"<{len(value)} bytes>"
    elif isinstance(value, list):
        yield "["
        for index, element in enumerate(value):
            yield ", " if index else ""
            yield from _pieces(element)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, element) in enumerate(value.items()):
            yield ", " if index else ""
            yield f"{str(key)[: _MAX_RENDERED_VALUE + 1]}="
            yield from _pieces(element)
        yield "}"
    else:
        yield str(value)


_CHECKS: dict[str, Callable[[Any, object, str], Any]] = {
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
