"""Checking IAM policy documents when they are set: repository, registry and user policies.

The documents are parsed with the policy engine's own parser, so whatever is accepted here
is exactly what authorization later evaluates.
"""

from __future__ import annotations

from ecrd.auth.policy_document import PolicyDocumentInvalid, PolicyKind, parse_policy
from ecrd.errors import PolicyInvalid


def check_resource_policy(text: str) -> str:
    """Return `text` if it is a well-formed resource policy; PolicyInvalid otherwise."""
    return _check(text, "resource")


def check_identity_policy(text: str) -> str:
    """Return `text` if it is a well-formed identity policy; PolicyInvalid otherwise."""
    return _check(text, "identity")


def _check(text: str, kind: PolicyKind) -> str:
    try:
        parse_policy(text, kind)
    except PolicyDocumentInvalid as error:
        raise PolicyInvalid(error.message) from None
    return text
