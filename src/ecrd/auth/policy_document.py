"""IAM JSON policy documents: parsing and validating them into statements ready to evaluate.

Identity policies are attached to a user and name no principal; resource policies (repository
and registry policies) are attached to a resource and must say whom they are about. Every
rejection carries one sentence naming what is wrong: `ecrd keys create` shows it, the AWS edge
logs it (ECR's own message names no detail).

Statement ids need not be unique to parse: ECR accepts repository and registry policies that
repeat a Sid, and evaluation never looks at them. IAM refuses an identity policy that repeats
one, so `check_unique_sids` is applied where identity policies are set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ecrd.auth.conditions import NULL, Condition, parse_operator, variable_names
from ecrd.bounded_parsing import InputInvalid, parse_json

PolicyKind = Literal["identity", "resource"]
Effect = Literal["Allow", "Deny"]

_VERSIONS = ("2012-10-17", "2008-10-17")
_DOCUMENT_ELEMENTS = ("Version", "Id", "Statement")
_STATEMENT_ELEMENTS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")
_ACTION = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9*?_-]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_PRINCIPAL_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(?:root|(?:user|role)/[\w+=,.@/-]+)$"
)
_TAG_KEY_PREFIXES = ("ecr:resourcetag/", "aws:resourcetag/")


class PolicyDocumentInvalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Principals:
    """A Principal or NotPrincipal element. `everyone` is "*" or {"AWS": "*"}."""

    everyone: bool = False
    # AWS values: 12-digit account ids and IAM ARNs.
    aws: tuple[str, ...] = ()
    # Service, Federated and CanonicalUser values, which name no caller of ours.
    others: tuple[str, ...] = ()


@dataclass(frozen=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...]
    # True for NotAction: the statement covers every action *not* listed.
    not_action: bool = False
    # None when the statement has neither Resource nor NotResource.
    resources: tuple[str, ...] | None = None
    not_resource: bool = False
    principals: Principals | None = None
    not_principal: bool = False
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None


@dataclass(frozen=True)
class PolicyDocument:
    statements: tuple[Statement, ...]
    text: str
    # Policy variables are only substituted in version 2012-10-17 documents.
    version: str | None = None

    def mentions_resource_tags(self) -> bool:
        """Whether evaluating needs the resource's tags (ecr:/aws:ResourceTag/ keys)."""
        return any(_mentions_resource_tags(statement) for statement in self.statements)


def parse_policy(text: str, kind: PolicyKind) -> PolicyDocument:
    """The document in `text`; PolicyDocumentInvalid if it is not a valid `kind` policy."""
    try:
        document = parse_json(text)
    except InputInvalid as error:
        raise PolicyDocumentInvalid(f"policy: {error}") from None
    if not isinstance(document, dict):
        raise PolicyDocumentInvalid("policy must be a JSON object")
    _check_elements(document, _DOCUMENT_ELEMENTS, "policy element")
    version = document.get("Version")
    if version is not None and version not in _VERSIONS:
        raise PolicyDocumentInvalid(f"unknown policy Version {version!r}")
    if "Id" in document and not isinstance(document["Id"], str):
        raise PolicyDocumentInvalid("Id must be a string")
    raw_statements = document.get("Statement")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyDocumentInvalid("policy needs at least one Statement")
    statements = tuple(_parse_statement(raw, kind) for raw in raw_statements)
    return PolicyDocument(statements=statements, text=text, version=version)


def check_unique_sids(document: PolicyDocument) -> None:
    """PolicyDocumentInvalid, in IAM's words, if two statements share a Sid (IAM's rule for
    identity policies; ECR's resource policies may repeat one)."""
    seen: set[str] = set()
    for statement in document.statements:
        if statement.sid:
            if statement.sid in seen:
                raise PolicyDocumentInvalid(
                    "Statement IDs (SID) in a single policy must be unique: "
                    f"{statement.sid!r} is used more than once"
                )
            seen.add(statement.sid)


def _check_elements(raw: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    for name in raw:
        if name not in known:
            raise PolicyDocumentInvalid(f"unknown {what} {name!r}")


# Statements


def _parse_statement(raw: Any, kind: PolicyKind) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyDocumentInvalid("each Statement must be a JSON object")
    _check_elements(raw, _STATEMENT_ELEMENTS, "statement element")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyDocumentInvalid("Sid must be a string")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyDocumentInvalid("Effect must be Allow or Deny")
    actions, not_action = _actions(raw)
    resources, not_resource = _resources(raw, kind)
    principals, not_principal = _principals(raw, kind)
    return Statement(
        effect="Allow" if effect == "Allow" else "Deny",
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        principals=principals,
        not_principal=not_principal,
        conditions=_conditions(raw.get("Condition")),
        sid=sid,
    )


def _one_of(raw: dict[str, Any], first: str, second: str, *, required: bool) -> str | None:
    """Which of two alternative elements (e.g. Action and NotAction) the statement has."""
    if first in raw and second in raw:
        raise PolicyDocumentInvalid(f"a statement may not have both {first} and {second}")
    if first in raw:
        return first
    if second in raw:
        return second
    if required:
        raise PolicyDocumentInvalid(f"a statement needs one of {first} and {second}")
    return None


def _actions(raw: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    element = _one_of(raw, "Action", "NotAction", required=True) or "Action"
    actions = _strings(raw[element], element)
    for action in actions:
        if action != "*" and not _ACTION.match(action):
            raise PolicyDocumentInvalid(
                f"{element} {action!r} is not '*' or of the form 'service:ActionName'"
            )
    return actions, element == "NotAction"


def _resources(raw: dict[str, Any], kind: PolicyKind) -> tuple[tuple[str, ...] | None, bool]:
    element = _one_of(raw, "Resource", "NotResource", required=kind == "identity")
    if element is None:
        return None, False
    resources = _strings(raw[element], element)
    for resource in resources:
        # Anything else could only ever match nothing, which IAM reports as an error.
        if resource != "*" and not (resource.startswith("arn:") and resource.count(":") >= 5):
            raise PolicyDocumentInvalid(f"{element} {resource!r} is not '*' or an ARN")
    return resources, element == "NotResource"


def _principals(raw: dict[str, Any], kind: PolicyKind) -> tuple[Principals | None, bool]:
    if kind == "identity":
        for element in ("Principal", "NotPrincipal"):
            if element in raw:
                raise PolicyDocumentInvalid(f"an identity policy may not have a {element}")
        return None, False
    element = _one_of(raw, "Principal", "NotPrincipal", required=True) or "Principal"
    return _principal_element(raw[element], element), element == "NotPrincipal"


def _strings(value: Any, element: str) -> tuple[str, ...]:
    """A string-or-list-of-strings element as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise PolicyDocumentInvalid(f"{element} must be a string or a non-empty list of strings")


# Principals


def _principal_element(value: Any, element: str) -> Principals:
    if value == "*":
        return Principals(everyone=True)
    if not isinstance(value, dict) or not value:
        raise PolicyDocumentInvalid(f"{element} must be '*' or an object such as {{\"AWS\": ...}}")
    everyone = False
    aws: tuple[str, ...] = ()
    others: list[str] = []
    for principal_type, names in value.items():
        if principal_type not in _PRINCIPAL_TYPES:
            raise PolicyDocumentInvalid(f"unknown {element} type {principal_type!r}")
        strings = _strings(names, f"{element} {principal_type}")
        if principal_type == "AWS":
            for name in strings:
                _check_aws_principal(name, element)
            everyone = "*" in strings
            aws = tuple(name for name in strings if name != "*")
        else:
            others += strings
    return Principals(everyone=everyone, aws=aws, others=tuple(others))


def _check_aws_principal(name: str, element: str) -> None:
    if name == "*" or _ACCOUNT_ID.match(name) or _PRINCIPAL_ARN.match(name):
        return
    raise PolicyDocumentInvalid(
        f"{element} AWS {name!r} is not '*', an account id or an IAM root, user or role ARN"
    )


# Conditions


def _conditions(raw: Any) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyDocumentInvalid("Condition must be a JSON object")
    conditions: list[Condition] = []
    for operator_text, keys in raw.items():
        conditions += _operator_conditions(operator_text, keys)
    return tuple(conditions)


def _operator_conditions(operator_text: str, keys: Any) -> list[Condition]:
    operator = parse_operator(operator_text)
    if operator is None:
        if operator_text.lower().endswith((NULL + "IfExists").lower()):
            raise PolicyDocumentInvalid("condition operator Null cannot take IfExists")
        raise PolicyDocumentInvalid(f"unknown condition operator {operator_text!r}")
    if not isinstance(keys, dict):
        raise PolicyDocumentInvalid(
            f"condition operator {operator_text!r} must map condition keys to values"
        )
    return [
        Condition(
            operator=operator.name,
            key=key,
            values=_condition_values(operator_text, key, values),
            qualifier=operator.qualifier,
            if_exists=operator.if_exists,
        )
        for key, values in keys.items()
    ]


def _condition_values(operator_text: str, key: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(_is_scalar(item) for item in values):
        raise PolicyDocumentInvalid(
            f"condition key {key!r} under {operator_text!r} must have a string, number or "
            "boolean value, or a non-empty list of them"
        )
    return tuple(_as_text(item) for item in values)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)


def _as_text(value: str | int | float) -> str:
    # JSON true/false compare as the strings IAM puts in request contexts.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mentions_resource_tags(statement: Statement) -> bool:
    keys = [condition.key.lower() for condition in statement.conditions]
    for condition in statement.conditions:
        for value in condition.values:
            keys += variable_names(value)
    for resource in statement.resources or ():
        keys += variable_names(resource)
    return any(key.startswith(_TAG_KEY_PREFIXES) for key in keys)
