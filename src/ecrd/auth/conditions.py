"""IAM condition operators, glob matching and policy variables, as IAM evaluates them.

A request context maps condition keys to values. Keys are matched case-insensitively, so
contexts are normalised once (`normalize_context`) to lower-case keys and tuples of values.

Patterns (Resource, StringLike and ArnLike values) pass through `expand`, which substitutes
policy variables and yields an *escaped glob*: `*` and `?` are wildcards, and a backslash makes
the next character literal. Substituted values are escaped, so a user name holding `*` can
never widen a pattern.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

Context = Mapping[str, tuple[str, ...]]
SetQualifier = Literal["ForAnyValue", "ForAllValues"]

# The only policy version in which ${...} is a variable; in 2008-10-17 it is literal text.
VARIABLES_VERSION = "2012-10-17"


def normalize_context(context: Mapping[str, str | Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Lower-case keys and tuple values, so lookups are case-insensitive and uniform."""
    normalized: dict[str, tuple[str, ...]] = {}
    for key, value in context.items():
        normalized[key.lower()] = (value,) if isinstance(value, str) else tuple(value)
    return normalized


# Globs


def literal_glob(text: str) -> str:
    """An escaped glob matching `text` exactly."""
    return re.sub(r"([\\*?])", r"\\\1", text)


def raw_glob(text: str) -> str:
    """An escaped glob in which `text`'s own `*` and `?` stay wildcards."""
    return text.replace("\\", "\\\\")


@lru_cache(maxsize=4096)
def _glob_regex(glob: str, ignore_case: bool) -> re.Pattern[str]:
    parts: list[str] = []
    escaped = False
    for char in glob:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def glob_match(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob_regex(glob, ignore_case).fullmatch(value) is not None


def _split_glob(glob: str, separator: str, parts: int) -> list[str]:
    """Split an escaped glob on unescaped `separator`, into at most `parts` pieces."""
    pieces: list[str] = []
    current: list[str] = []
    escaped = False
    for char in glob:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator and len(pieces) < parts - 1:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def arn_match(glob: str, arn: str) -> bool:
    """ArnLike: the six colon-separated parts compared one by one, wildcards within each."""
    if glob == "*":
        return True
    pattern_parts = _split_glob(glob, ":", 6)
    value_parts = arn.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(glob_match(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


# Policy variables

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


def variable_names(text: str) -> list[str]:
    """Lower-cased keys of the variables `text` refers to (escapes excluded)."""
    names = []
    for body in _VARIABLE.findall(text):
        if body in _ESCAPES:
            continue
        default = _DEFAULT.match(body)
        names.append((default.group(1) if default else body.strip()).lower())
    return names


def expand(text: str, context: Context, version: str | None, *, wildcards: bool) -> str | None:
    """`text` as an escaped glob with its variables substituted; None if one has no value.

    With `wildcards` false the text's own `*` and `?` are literal (e.g. for StringEquals).
    """
    as_glob = raw_glob if wildcards else literal_glob
    if version != VARIABLES_VERSION:
        return as_glob(text)
    pieces: list[str] = []
    position = 0
    for variable in _VARIABLE.finditer(text):
        pieces.append(as_glob(text[position : variable.start()]))
        value = _variable_value(variable.group(1), context)
        if value is None:
            return None
        pieces.append(literal_glob(value))
        position = variable.end()
    pieces.append(as_glob(text[position:]))
    return "".join(pieces)


def _variable_value(body: str, context: Context) -> str | None:
    if body in _ESCAPES:
        return _ESCAPES[body]
    default = _DEFAULT.match(body)
    key, fallback = (default.group(1), default.group(2)) if default else (body.strip(), None)
    values = context.get(key.lower(), ())
    # A multivalued key cannot stand in for one value; IAM treats it as having none.
    if len(values) == 1:
        return values[0]
    return fallback


def _unescape(glob: str) -> str:
    return re.sub(r"\\(.)", r"\1", glob, flags=re.DOTALL)


# Operators

# Compares one context value with one (expanded) policy value.
Comparer = Callable[[str, str], bool]


@dataclass(frozen=True)
class Operator:
    name: str
    compare: Comparer
    # The operator is the negation of `compare` over all the policy values (…Not…).
    negated: bool = False
    # How policy values are read: as globs or as text (both with variables substituted), or
    # raw, for the operators that take no policy variables.
    values: Literal["glob", "text", "raw"] = "raw"


def _string_equals(value: str, policy_value: str) -> bool:
    return value == policy_value


def _string_equals_ignore_case(value: str, policy_value: str) -> bool:
    return value.casefold() == policy_value.casefold()


def _parse_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_date(text: str) -> float | None:
    epoch = _parse_number(text)
    if epoch is not None:
        return epoch
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # A date without a zone is taken as UTC, as AWS does.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _ordered(
    parse: Callable[[str], float | None], test: Callable[[float, float], bool]
) -> Comparer:
    def compare(value: str, policy_value: str) -> bool:
        left, right = parse(value), parse(policy_value)
        return left is not None and right is not None and test(left, right)

    return compare


def _bool(value: str, policy_value: str) -> bool:
    lowered = value.lower()
    return lowered in ("true", "false") and lowered == policy_value.lower()


def _binary(value: str, policy_value: str) -> bool:
    try:
        return base64.b64decode(value, validate=True) == base64.b64decode(
            policy_value, validate=True
        )
    except (binascii.Error, ValueError):
        return False


def _ip(value: str, policy_value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.strip())
        network = ipaddress.ip_network(policy_value.strip(), strict=False)
    except ValueError:
        return False
    return address.version == network.version and address in network


def _eq(a: float, b: float) -> bool:
    return a == b


def _lt(a: float, b: float) -> bool:
    return a < b


def _le(a: float, b: float) -> bool:
    return a <= b


def _gt(a: float, b: float) -> bool:
    return a > b


def _ge(a: float, b: float) -> bool:
    return a >= b


def _glob(value: str, glob: str) -> bool:
    return glob_match(glob, value)


def _arn(value: str, glob: str) -> bool:
    return arn_match(glob, value)


def _build_operators() -> dict[str, Operator]:
    operators = [
        Operator("StringEquals", _string_equals, values="text"),
        Operator("StringNotEquals", _string_equals, negated=True, values="text"),
        Operator("StringEqualsIgnoreCase", _string_equals_ignore_case, values="text"),
        Operator(
            "StringNotEqualsIgnoreCase", _string_equals_ignore_case, negated=True, values="text"
        ),
        Operator("StringLike", _glob, values="glob"),
        Operator("StringNotLike", _glob, negated=True, values="glob"),
        Operator("Bool", _bool, values="text"),
        Operator("BinaryEquals", _binary),
        Operator("IpAddress", _ip),
        Operator("NotIpAddress", _ip, negated=True),
        # IAM gives ArnEquals the same wildcard matching as ArnLike.
        Operator("ArnEquals", _arn, values="glob"),
        Operator("ArnLike", _arn, values="glob"),
        Operator("ArnNotEquals", _arn, negated=True, values="glob"),
        Operator("ArnNotLike", _arn, negated=True, values="glob"),
    ]
    for family, parse in (("Numeric", _parse_number), ("Date", _parse_date)):
        operators += [
            Operator(f"{family}Equals", _ordered(parse, _eq)),
            Operator(f"{family}NotEquals", _ordered(parse, _eq), negated=True),
            Operator(f"{family}LessThan", _ordered(parse, _lt)),
            Operator(f"{family}LessThanEquals", _ordered(parse, _le)),
            Operator(f"{family}GreaterThan", _ordered(parse, _gt)),
            Operator(f"{family}GreaterThanEquals", _ordered(parse, _ge)),
        ]
    return {operator.name.lower(): operator for operator in operators}


OPERATORS = _build_operators()
NULL = "Null"


# Conditions


@dataclass(frozen=True)
class Condition:
    """One key under one operator of a statement's Condition block."""

    operator: str  # canonical name, e.g. "StringLike" or "Null"
    key: str  # as written in the policy
    values: tuple[str, ...]  # JSON true/false and numbers already turned into text
    qualifier: SetQualifier | None = None
    if_exists: bool = False


@dataclass(frozen=True)
class ParsedOperator:
    name: str
    qualifier: SetQualifier | None
    if_exists: bool


def parse_operator(text: str) -> ParsedOperator | None:
    """Split e.g. "ForAnyValue:StringLikeIfExists"; None if it names no operator."""
    qualifier: SetQualifier | None = None
    base = text
    for prefix in ("ForAnyValue", "ForAllValues"):
        if text.lower().startswith(prefix.lower() + ":"):
            qualifier = "ForAnyValue" if prefix == "ForAnyValue" else "ForAllValues"
            base = text[len(prefix) + 1 :]
    if base.lower() == NULL.lower():
        return ParsedOperator(NULL, qualifier, False)
    if_exists = base.lower().endswith("ifexists")
    if if_exists:
        base = base[: -len("IfExists")]
    operator = OPERATORS.get(base.lower())
    if operator is None:
        return None
    return ParsedOperator(operator.name, qualifier, if_exists)


def condition_matches(condition: Condition, context: Context, version: str | None) -> bool:
    values = context.get(condition.key.lower(), ())
    if condition.operator == NULL:
        absent = "true" if not values else "false"
        return any(value.lower() == absent for value in condition.values)
    if not values:
        return _missing_key(condition)
    operator = OPERATORS[condition.operator.lower()]
    policy_values = _policy_values(operator, condition.values, context, version)

    def satisfied(value: str) -> bool:
        hit = any(operator.compare(value, policy_value) for policy_value in policy_values)
        return hit != operator.negated

    if condition.qualifier == "ForAllValues":
        return all(satisfied(value) for value in values)
    # ForAnyValue, and the default for a context key that holds several values.
    return any(satisfied(value) for value in values)


def _missing_key(condition: Condition) -> bool:
    if condition.if_exists:
        return True
    if condition.qualifier is not None:
        # "Every value satisfies it" holds vacuously for no values; "any value" does not.
        return condition.qualifier == "ForAllValues"
    # A key that is absent is, in particular, not equal to / not like the policy values.
    return OPERATORS[condition.operator.lower()].negated


def _policy_values(
    operator: Operator, values: tuple[str, ...], context: Context, version: str | None
) -> list[str]:
    if operator.values == "raw":
        return list(values)
    wildcards = operator.values == "glob"
    expanded = (expand(value, context, version, wildcards=wildcards) for value in values)
    # A value whose variable has no value in the context matches nothing.
    globs = [value for value in expanded if value is not None]
    return globs if wildcards else [_unescape(glob) for glob in globs]


def conditions_match(
    conditions: Sequence[Condition], context: Context, version: str | None
) -> bool:
    return all(condition_matches(condition, context, version) for condition in conditions)
