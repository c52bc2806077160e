"""Condition operators as the IAM docs describe them: each with a match, a mismatch, a missing
key, IfExists and the ForAnyValue/ForAllValues set qualifiers; and policy variables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from ecrd.auth.conditions import conditions_match, normalize_context
from ecrd.auth.policy_document import parse_policy

MISSING = object()
V2012 = "2012-10-17"
V2008 = "2008-10-17"


def holds(
    operator: str,
    policy_value: Any,
    context_value: object,
    *,
    key: str = "test:Key",
    extra: dict[str, str | Sequence[str]] | None = None,
    version: str = V2012,
) -> bool:
    """Whether {operator: {key: policy_value}} holds for a request where key = context_value."""
    document = parse_policy(
        json.dumps(
            {
                "Version": version,
                "Statement": {
                    "Effect": "Allow",
                    "Action": "ecr:*",
                    "Resource": "*",
                    "Condition": {operator: {key: policy_value}},
                },
            }
        ),
        "identity",
    )
    context: dict[str, str | Sequence[str]] = dict(extra or {})
    if context_value is not MISSING:
        assert isinstance(context_value, str | list)
        context["test:Key"] = context_value
    statement = document.statements[0]
    return conditions_match(statement.conditions, normalize_context(context), document.version)


# One row per (operator, policy value, context value) with the documented outcome.
OPERATOR_CASES = [
    # String
    ("StringEquals", "prod", "prod", True),
    ("StringEquals", "prod", "Prod", False),
    ("StringEquals", ["dev", "prod"], "prod", True),
    ("StringEquals", "pr*", "prod", False),
    ("StringNotEquals", "prod", "dev", True),
    ("StringNotEquals", "prod", "prod", False),
    ("StringNotEquals", ["dev", "prod"], "dev", False),
    ("StringEqualsIgnoreCase", "PROD", "prod", True),
    ("StringEqualsIgnoreCase", "prod", "dev", False),
    ("StringNotEqualsIgnoreCase", "PROD", "prod", False),
    ("StringNotEqualsIgnoreCase", "prod", "dev", True),
    ("StringLike", "team/*", "team/app", True),
    ("StringLike", "team/?pp", "team/app", True),
    ("StringLike", "team/?", "team/app", False),
    ("StringLike", "Team/*", "team/app", False),
    ("StringLike", ["other/*", "team/*"], "team/app", True),
    ("StringNotLike", "team/*", "other/app", True),
    ("StringNotLike", "team/*", "team/app", False),
    # Numeric
    ("NumericEquals", "10", "10", True),
    ("NumericEquals", 10, "10.0", True),
    ("NumericEquals", "10", "11", False),
    ("NumericEquals", "10", "ten", False),
    ("NumericNotEquals", "10", "11", True),
    ("NumericNotEquals", "10", "10", False),
    ("NumericLessThan", "10", "9", True),
    ("NumericLessThan", "10", "10", False),
    ("NumericLessThanEquals", "10", "10", True),
    ("NumericLessThanEquals", "10", "11", False),
    ("NumericGreaterThan", "10", "11", True),
    ("NumericGreaterThan", "10", "10", False),
    ("NumericGreaterThanEquals", "10", "10", True),
    ("NumericGreaterThanEquals", "10", "9.5", False),
    # Date: ISO 8601 or epoch seconds, compared as instants
    ("DateEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("DateEquals", "2026-01-01T00:00:00Z", "1767225600", True),
    ("DateEquals", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", True),
    ("DateEquals", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", False),
    ("DateEquals", "2026-01-01T00:00:00Z", "yesterday", False),
    ("DateNotEquals", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", True),
    ("DateNotEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("DateLessThan", "2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z", True),
    ("DateLessThan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("DateLessThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("DateLessThanEquals", "2026-01-01", "2026-01-01T00:00:01Z", False),
    ("DateGreaterThan", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", True),
    ("DateGreaterThan", "1767225600", "2025-06-01T00:00:00Z", False),
    ("DateGreaterThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("DateGreaterThanEquals", "2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z", False),
    # Bool: JSON booleans or strings, case-insensitive
    ("Bool", True, "true", True),
    ("Bool", "true", "TRUE", True),
    ("Bool", False, "true", False),
    ("Bool", "false", "false", True),
    ("Bool", "true", "yes", False),
    # Binary: base64 of the same bytes
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "QmluYXJ5VmFsdWU=", True),
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "T3RoZXI=", False),
    ("BinaryEquals", "QmluYXJ5VmFsdWU=", "not base64!", False),
    # IP addresses, v4 and v6, CIDR or single address
    ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
    ("IpAddress", "203.0.113.0/24", "198.51.100.7", False),
    ("IpAddress", "203.0.113.7", "203.0.113.7", True),
    ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
    ("IpAddress", "2001:db8::/32", "203.0.113.7", False),
    ("IpAddress", ["10.0.0.0/8", "203.0.113.0/24"], "10.1.2.3", True),
    ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
    ("NotIpAddress", "203.0.113.0/24", "198.51.100.7", True),
    ("NotIpAddress", "203.0.113.0/24", "203.0.113.7", False),
    # ARNs: six parts compared one by one, wildcards within each
    (
        "ArnEquals",
        "arn:aws:iam::111111111111:user/alice",
        "arn:aws:iam::111111111111:user/alice",
        True,
    ),
    ("ArnEquals", "arn:aws:iam::111111111111:user/*", "arn:aws:iam::111111111111:user/alice", True),
    (
        "ArnEquals",
        "arn:aws:iam::111111111111:user/alice",
        "arn:aws:iam::111111111111:user/bob",
        False,
    ),
    ("ArnLike", "arn:aws:iam::*:user/alice", "arn:aws:iam::222222222222:user/alice", True),
    ("ArnLike", "arn:aws:iam::1111111111??:root", "arn:aws:iam::111111111111:root", True),
    ("ArnLike", "arn:aws:iam::111111111111:user/*", "arn:aws:iam::222222222222:user/alice", False),
    # a wildcard does not reach across the colons between parts
    ("ArnLike", "arn:aws:*:user/alice", "arn:aws:iam::111111111111:user/alice", False),
    ("ArnLike", "arn:aws:iam::111111111111:user/*", "not-an-arn", False),
    ("ArnLike", "arn:aws:iam::111111111111:user/*", "ARN:AWS:IAM::111111111111:user/alice", False),
    ("ArnNotEquals", "arn:aws:iam::111111111111:root", "arn:aws:iam::222222222222:root", True),
    ("ArnNotEquals", "arn:aws:iam::111111111111:root", "arn:aws:iam::111111111111:root", False),
    ("ArnNotLike", "arn:aws:iam::111111111111:*", "arn:aws:iam::222222222222:root", True),
    ("ArnNotLike", "arn:aws:iam::111111111111:*", "arn:aws:iam::111111111111:user/a", False),
]


@pytest.mark.parametrize(
    ("operator", "policy_value", "context_value", "expected"),
    OPERATOR_CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(OPERATOR_CASES)],
)
def test_operator(operator: str, policy_value: Any, context_value: str, expected: bool) -> None:
    assert holds(operator, policy_value, context_value) is expected


# A key absent from the request: positive operators are false, negated ones true.
MISSING_KEY_CASES = [
    ("StringEquals", "x", False),
    ("StringNotEquals", "x", True),
    ("StringEqualsIgnoreCase", "x", False),
    ("StringNotEqualsIgnoreCase", "x", True),
    ("StringLike", "*", False),
    ("StringNotLike", "x*", True),
    ("NumericEquals", "1", False),
    ("NumericNotEquals", "1", True),
    ("NumericLessThan", "1", False),
    ("DateGreaterThan", "2020-01-01T00:00:00Z", False),
    ("DateNotEquals", "2020-01-01T00:00:00Z", True),
    ("Bool", "false", False),
    ("BinaryEquals", "QQ==", False),
    ("IpAddress", "0.0.0.0/0", False),
    ("NotIpAddress", "10.0.0.0/8", True),
    ("ArnLike", "*", False),
    ("ArnEquals", "arn:aws:iam::111111111111:root", False),
    ("ArnNotEquals", "arn:aws:iam::111111111111:root", True),
    ("ArnNotLike", "arn:*:*:*:*:*", True),
]


@pytest.mark.parametrize(("operator", "policy_value", "expected"), MISSING_KEY_CASES)
def test_missing_key(operator: str, policy_value: str, expected: bool) -> None:
    assert holds(operator, policy_value, MISSING) is expected


@pytest.mark.parametrize(
    ("operator", "policy_value", "context_value", "expected"),
    [
        # IfExists: a missing key makes the condition true ...
        ("StringEqualsIfExists", "prod", MISSING, True),
        ("NumericLessThanIfExists", "5", MISSING, True),
        ("IpAddressIfExists", "10.0.0.0/8", MISSING, True),
        ("ArnLikeIfExists", "arn:aws:iam::*:root", MISSING, True),
        ("BoolIfExists", "true", MISSING, True),
        # ... and a present key is checked as without IfExists
        ("StringEqualsIfExists", "prod", "dev", False),
        ("StringEqualsIfExists", "prod", "prod", True),
        ("NumericLessThanIfExists", "5", "7", False),
        ("IpAddressIfExists", "10.0.0.0/8", "192.0.2.1", False),
        ("StringNotLikeIfExists", "team/*", "team/app", False),
    ],
)
def test_if_exists(operator: str, policy_value: str, context_value: object, expected: bool) -> None:
    assert holds(operator, policy_value, context_value) is expected


@pytest.mark.parametrize(
    ("operator", "policy_value", "context_value", "expected"),
    [
        # ForAnyValue: at least one request value satisfies the operator
        ("ForAnyValue:StringEquals", ["a", "b"], ["c", "b"], True),
        ("ForAnyValue:StringEquals", ["a", "b"], ["c", "d"], False),
        ("ForAnyValue:StringEquals", ["a"], MISSING, False),
        ("ForAnyValue:StringEquals", ["a"], [], False),
        ("ForAnyValue:StringLike", "env-*", ["team", "env-prod"], True),
        ("ForAnyValue:StringNotEquals", ["a"], ["a", "z"], True),
        ("ForAnyValue:StringNotEquals", ["a"], MISSING, False),
        ("ForAnyValue:NumericGreaterThan", "3", ["1", "4"], True),
        # ForAllValues: every request value satisfies it; true for no values at all
        ("ForAllValues:StringEquals", ["a", "b"], ["a", "b"], True),
        ("ForAllValues:StringEquals", ["a", "b"], ["a", "c"], False),
        ("ForAllValues:StringEquals", ["a", "b"], MISSING, True),
        ("ForAllValues:StringEquals", ["a", "b"], [], True),
        ("ForAllValues:StringLike", "env-*", ["env-a", "env-b"], True),
        ("ForAllValues:StringLike", "env-*", ["env-a", "team"], False),
        ("ForAllValues:StringNotEquals", ["x"], ["a", "b"], True),
        ("ForAllValues:StringNotEquals", ["x"], ["a", "x"], False),
        ("ForAllValues:IpAddress", "10.0.0.0/8", ["10.0.0.1", "10.9.9.9"], True),
        ("ForAllValues:IpAddress", "10.0.0.0/8", ["10.0.0.1", "192.0.2.1"], False),
        # IfExists still wins for a missing key
        ("ForAnyValue:StringEqualsIfExists", ["a"], MISSING, True),
        # A multi-valued key without a qualifier behaves like ForAnyValue
        ("StringEquals", "b", ["a", "b"], True),
        ("StringEquals", "z", ["a", "b"], False),
    ],
)
def test_set_qualifiers(
    operator: str, policy_value: Any, context_value: object, expected: bool
) -> None:
    assert holds(operator, policy_value, context_value) is expected


@pytest.mark.parametrize(
    ("policy_value", "context_value", "expected"),
    [
        ("true", MISSING, True),
        ("true", "anything", False),
        (True, MISSING, True),
        ("false", "anything", True),
        ("false", MISSING, False),
        ("false", "", True),
        ("true", [], True),
    ],
)
def test_null(policy_value: Any, context_value: object, expected: bool) -> None:
    assert holds("Null", policy_value, context_value) is expected


def test_condition_keys_are_matched_case_insensitively() -> None:
    assert holds("StringEquals", "prod", MISSING, key="TEST:KEY", extra={"test:key": "prod"})
    assert holds(
        "IpAddress", "10.0.0.0/8", MISSING, key="aws:SourceIp", extra={"AWS:SOURCEIP": "10.1.1.1"}
    )


def test_operators_and_keys_are_anded_and_values_ored() -> None:
    document = parse_policy(
        json.dumps(
            {
                "Statement": {
                    "Effect": "Allow",
                    "Action": "ecr:*",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"k:a": ["1", "2"], "k:b": "x"},
                        "Bool": {"k:c": "true"},
                    },
                }
            }
        ),
        "identity",
    )
    conditions = document.statements[0].conditions

    def check(context: dict[str, str | Sequence[str]]) -> bool:
        return conditions_match(conditions, normalize_context(context), document.version)

    assert check({"k:a": "2", "k:b": "x", "k:c": "true"})
    assert not check({"k:a": "3", "k:b": "x", "k:c": "true"})
    assert not check({"k:a": "1", "k:b": "y", "k:c": "true"})
    assert not check({"k:a": "1", "k:b": "x", "k:c": "false"})


# Policy variables


@pytest.mark.parametrize(
    ("operator", "policy_value", "context_value", "extra", "version", "expected"),
    [
        ("StringEquals", "${aws:username}", "alice", {"aws:username": "alice"}, V2012, True),
        ("StringEquals", "${aws:username}", "bob", {"aws:username": "alice"}, V2012, False),
        (
            "StringLike",
            "home/${aws:username}/*",
            "home/alice/x",
            {"aws:username": "alice"},
            V2012,
            True,
        ),
        (
            "StringLike",
            "home/${aws:username}/*",
            "home/bob/x",
            {"aws:username": "alice"},
            V2012,
            False,
        ),
        # Variable names are case-insensitive
        ("StringEquals", "${AWS:UserName}", "alice", {"aws:username": "alice"}, V2012, True),
        # In 2008-10-17 documents ${...} is literal text
        ("StringEquals", "${aws:username}", "alice", {"aws:username": "alice"}, V2008, False),
        (
            "StringEquals",
            "${aws:username}",
            "${aws:username}",
            {"aws:username": "alice"},
            V2008,
            True,
        ),
        # A variable with no value matches nothing ...
        ("StringEquals", "${aws:username}", "alice", {}, V2012, False),
        ("StringLike", "${aws:username}*", "alice", {}, V2012, False),
        # ... unless it names a default
        ("StringEquals", "${aws:username, 'nobody'}", "nobody", {}, V2012, True),
        # Escapes stand for the literal characters
        ("StringEquals", "a${*}b", "a*b", {}, V2012, True),
        ("StringLike", "a${*}b", "axxb", {}, V2012, False),
        ("StringLike", "a${*}b", "a*b", {}, V2012, True),
        ("StringLike", "a${?}", "a?", {}, V2012, True),
        ("StringEquals", "${$}{x}", "${x}", {}, V2012, True),
        # A substituted value is literal, never a wildcard
        ("StringLike", "${aws:username}", "anything", {"aws:username": "*"}, V2012, False),
        # Variables in ARN conditions
        (
            "ArnLike",
            "arn:aws:iam::${aws:PrincipalAccount}:user/*",
            "arn:aws:iam::111111111111:user/alice",
            {"aws:PrincipalAccount": "111111111111"},
            V2012,
            True,
        ),
    ],
)
def test_policy_variables(
    operator: str,
    policy_value: str,
    context_value: str,
    extra: dict[str, str | Sequence[str]],
    version: str,
    expected: bool,
) -> None:
    assert holds(operator, policy_value, context_value, extra=extra, version=version) is expected


def test_numeric_operators_take_no_policy_variables() -> None:
    assert not holds("NumericEquals", "${test:n}", "5", extra={"test:n": "5"})
