"""Checking IAM policy documents when they are set: repository, registry and user policies.

The documents are parsed with the policy engine's own parser, so whatever is accepted here
is exactly what authorization later evaluates. Identity policies also follow IAM's rule that
statement ids are unique; repository and registry policies may repeat one, as ECR allows.
"""

from __future__ import annotations

from ecrd.auth.authorizer import V1_POLICY_ACTIONS
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


def check_registry_policy(text: str, scope: str) -> str:
    """Return `text` if it may be the registry policy under REGISTRY_POLICY_SCOPE `scope`;
    PolicyInvalid otherwise. Under V1 ECR takes only the actions that scope governs (a
    wildcard such as `ecr:*` included); under V2 any well-formed resource policy."""
    try:
        document = parse_policy(text, "resource")
    except PolicyDocumentInvalid as error:
        raise PolicyInvalid(error.message) from None
    if scope == "V1":
        for statement in document.statements:
            if statement.not_action:
                raise PolicyInvalid("NotAction is not allowed under registry policy scope V1")
            governed = {name.lower() for name in V1_POLICY_ACTIONS}
            for action in statement.actions:
                # IAM compares action names without regard to case.
                if "*" not in action and "?" not in action and action.lower() not in governed:
                    raise PolicyInvalid(
                        f"{action} is not allowed under registry policy scope V1 "
                        f"(only {', '.join(sorted(V1_POLICY_ACTIONS))})"
                    )
    return text
