"""Checking IAM policy documents when they are set (repository and registry policies).

Only the document's shape is checked here: JSON, known elements, an Effect, an action and
(for resource policies) a principal in every statement.
"""

from __future__ import annotations

import json
from typing import Any

from ecrd.errors import PolicyInvalid

_DOCUMENT_ELEMENTS = {"Version", "Id", "Statement"}
_STATEMENT_ELEMENTS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
_VERSIONS = {"2012-10-17", "2008-10-17"}


def check_resource_policy(text: str) -> str:
    """Return `text` if it is a well-formed resource policy; PolicyInvalid otherwise."""
    try:
        document = json.loads(text)
    except ValueError:
        raise PolicyInvalid("policy is not valid JSON") from None
    if not isinstance(document, dict):
        raise PolicyInvalid("policy must be a JSON object")
    unknown = set(document) - _DOCUMENT_ELEMENTS
    if unknown:
        raise PolicyInvalid(f"unknown policy element {sorted(unknown)[0]!r}")
    if "Version" in document and document["Version"] not in _VERSIONS:
        raise PolicyInvalid(f"unknown policy version {document['Version']!r}")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyInvalid("policy needs at least one Statement")
    for statement in statements:
        _check_statement(statement)
    return text


def _check_statement(statement: Any) -> None:
    if not isinstance(statement, dict):
        raise PolicyInvalid("each Statement must be a JSON object")
    unknown = set(statement) - _STATEMENT_ELEMENTS
    if unknown:
        raise PolicyInvalid(f"unknown statement element {sorted(unknown)[0]!r}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyInvalid("Effect must be Allow or Deny")
    if ("Action" in statement) == ("NotAction" in statement):
        raise PolicyInvalid("a statement needs exactly one of Action and NotAction")
    if ("Principal" in statement) == ("NotPrincipal" in statement):
        raise PolicyInvalid("a statement needs exactly one of Principal and NotPrincipal")
    for element in ("Action", "NotAction", "Resource", "NotResource"):
        value = statement.get(element)
        if value is not None and not _strings(value):
            raise PolicyInvalid(f"{element} must be a string or a list of strings")
    condition = statement.get("Condition")
    if condition is not None and not isinstance(condition, dict):
        raise PolicyInvalid("Condition must be a JSON object")


def _strings(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
