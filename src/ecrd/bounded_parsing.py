"""Parsing what clients send, with bounds: JSON and decimal numbers.

Every edge parses untrusted JSON and numbers through here, because the standard parsers are
unbounded in ways a client can use: `json.loads` recurses once per nesting level (100,000 `[`
exhaust the stack) and turns thousands of digits into an int (or a ValueError past Python's
4,300-digit limit); `str.isdigit()` and `int()` accept `²` and other non-ASCII digits; and the
database overflows past 2**63. Each function raises `InputInvalid` with a message that says what
is wrong, for the edge to answer in its own protocol's words.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deeper than any manifest, policy or API body has a reason to be.
MAX_JSON_DEPTH = 64
# What the metadata store (BIGINT) and every wire format ecrd speaks can hold.
MAX_INTEGER = 2**63 - 1
MIN_INTEGER = -(2**63)
_INTEGER_DIGITS = len(str(MAX_INTEGER)) + 1  # a sign or a leading zero is allowed for
_DECIMAL = re.compile(r"[0-9]+", re.ASCII)
_CONTAINERS = (dict, list)


class InputInvalid(ValueError):
    """Input that does not parse within its bounds; the message says why."""


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _INTEGER_DIGITS:
        raise InputInvalid(f"number {text[:20]}... has {len(digits)} digits")
    value = int(text)
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise InputInvalid(f"number {text} does not fit in 64 bits")
    return value


def _constant(text: str) -> Any:
    raise InputInvalid(f"{text} is not a JSON value")


def parse_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in `data` (UTF-8 when bytes), whose arrays and objects nest at most
    `max_depth` deep and whose integers fit in 64 bits; InputInvalid otherwise."""
    try:
        value = json.loads(data, parse_int=_integer, parse_constant=_constant)
    except RecursionError:
        raise InputInvalid(f"JSON nests deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise InputInvalid("JSON is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise InputInvalid(f"not valid JSON: {error}") from None
    _check_depth(value, max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    """Walk the parsed value level by level (no recursion), refusing nesting past
    `max_depth`. json.loads makes only dicts and lists, so exact type checks suffice."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise InputInvalid(f"JSON nests deeper than {max_depth} levels")
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend(child for child in children if type(child) in _CONTAINERS)
        level = below


def parse_decimal(text: str, maximum: int = MAX_INTEGER, clamp: bool = False) -> int:
    """A non-negative integer written in ASCII digits, at most `maximum` (or, with `clamp`,
    `maximum` for anything larger); InputInvalid for anything else (signs, spaces, `²`, other
    scripts' digits, too many digits)."""
    if _DECIMAL.fullmatch(text) is None:
        raise InputInvalid(f"{text[:50]!r} is not a decimal number")
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        if clamp:
            return maximum
        raise InputInvalid(f"{text[:50]!r} is larger than {maximum}")
    return int(text)
