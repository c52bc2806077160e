"""Checking IAM policy documents when they are set: repository, registry and user policies.

The documents are parsed with the policy engine's own parser, so whatever is accepted here
is exactly what authorization later evaluates. Identity policies also follow IAM's rule that
statement ids are unique; repository and registry policies may repeat one, as ECR allows.
"""

from __future__ import annotations

from ecrd.auth.policy_document import PolicyDocumentInvalid, check_unique_sids, parse_policy
from ecrd.errors import PolicyInvalid


def check_resource_policy(text: str) -> str:
    """Return `text` if it is a well-formed resource policy; PolicyInvalid otherwise."""
    try:
        parse_policy(text, "resource")
    except PolicyDocumentInvalid as error:
        raise PolicyInvalid(error.message) from None
    return text


def check_identity_policy(text: str) -> str:
    """Return `text` if it is a well-formed identity policy with unique statement ids;
    PolicyInvalid otherwise."""
    try:
        check_unique_sids(parse_policy(text, "identity"))
    except PolicyDocumentInvalid as error:
        raise PolicyInvalid(error.message) from None
    return text
