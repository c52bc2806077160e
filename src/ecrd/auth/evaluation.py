"""The access decision: IAM's policy evaluation logic over identity and resource policies.

An explicit Deny anywhere wins. Otherwise, within one account an Allow from either side is
enough (the account root needs none); across accounts both the resource's policy and the
caller's identity must allow. Anonymous callers can only be let in by a resource policy that
names everyone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from ecrd.auth.conditions import (
    Context,
    conditions_match,
    expand,
    glob_match,
    normalize_context,
    raw_glob,
)
from ecrd.auth.policy_document import PolicyDocument, Principals, Statement
from ecrd.auth.principals import Principal, root_arn

IDENTITY_DENY = "with an explicit deny in an identity-based policy"
RESOURCE_DENY = "with an explicit deny in a resource-based policy"


@dataclass(frozen=True)
class AccessRequest:
    principal: Principal
    action: str  # e.g. "ecr:BatchGetImage"
    resource: str  # an ARN, or "*" for actions that act on no resource
    resource_account: str  # the account that owns the resource
    context: Mapping[str, str | Sequence[str]]  # condition keys, matched case-insensitively
    identity_policies: Sequence[PolicyDocument] = ()
    resource_policies: Sequence[PolicyDocument] = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # AWS's wording of why not; "" when allowed

    def denial_message(self, request: AccessRequest) -> str:
        message = (
            f"User: {request.principal.display_arn} is not authorized to perform: "
            f"{request.action} on resource: {request.resource}"
        )
        return f"{message} {self.reason}" if self.reason else message


ALLOWED = Decision(allowed=True, reason="")


class Grant(enum.IntEnum):
    """How a resource-policy statement's principal element covers the caller."""

    NONE = 0
    # Names the caller's account: the account's own IAM decides for its users.
    ACCOUNT = 1
    # Names the caller itself, or everyone.
    DIRECT = 2


def evaluate(request: AccessRequest) -> Decision:
    context = _context(request)
    principal = request.principal
    identity_policies = () if principal.is_anonymous else request.identity_policies
    identity = list(_applicable_identity(request, identity_policies, context))
    resource = list(_applicable_resource(request, context))
    if any(statement.effect == "Deny" for statement in identity):
        return Decision(False, IDENTITY_DENY)
    if any(statement.effect == "Deny" for statement, _ in resource):
        return Decision(False, RESOURCE_DENY)
    resource_grant = max(
        (grant for statement, grant in resource if statement.effect == "Allow"),
        default=Grant.NONE,
    )
    if principal.is_anonymous:
        return ALLOWED if resource_grant == Grant.DIRECT else _no_resource_allow(request)
    # The root of an account holds every permission its account has.
    identity_allows = principal.is_root or any(s.effect == "Allow" for s in identity)
    if principal.account_id == request.resource_account:
        if identity_allows or resource_grant == Grant.DIRECT:
            return ALLOWED
        return _no_identity_allow(request)
    if resource_grant == Grant.NONE:
        return _no_resource_allow(request)
    return ALLOWED if identity_allows else _no_identity_allow(request)


def _no_identity_allow(request: AccessRequest) -> Decision:
    return Decision(False, f"because no identity-based policy allows the {request.action} action")


def _no_resource_allow(request: AccessRequest) -> Decision:
    return Decision(False, f"because no resource-based policy allows the {request.action} action")


def _context(request: AccessRequest) -> dict[str, tuple[str, ...]]:
    """The request's context, plus the keys IAM always derives from the caller."""
    principal = request.principal
    derived: dict[str, str] = {}
    if not principal.is_anonymous:
        assert principal.account_id is not None
        derived["aws:principalaccount"] = principal.account_id
        derived["aws:principalarn"] = principal.arn or root_arn(principal.account_id)
        derived["aws:principaltype"] = "Account" if principal.is_root else "User"
        if principal.user_name is not None:
            derived["aws:username"] = principal.user_name
    else:
        derived["aws:principaltype"] = "Anonymous"
    given = normalize_context(request.context)
    return {**{key: (value,) for key, value in derived.items()}, **given}


# Which statements apply


def _applicable_identity(
    request: AccessRequest, policies: Sequence[PolicyDocument], context: Context
) -> Iterator[Statement]:
    for policy in policies:
        for statement in policy.statements:
            if _statement_applies(statement, policy, request, context):
                yield statement


def _applicable_resource(
    request: AccessRequest, context: Context
) -> Iterator[tuple[Statement, Grant]]:
    for policy in request.resource_policies:
        for statement in policy.statements:
            grant = _principal_grant(statement, request.principal)
            if grant != Grant.NONE and _statement_applies(statement, policy, request, context):
                yield statement, grant


def _statement_applies(
    statement: Statement, policy: PolicyDocument, request: AccessRequest, context: Context
) -> bool:
    return (
        _action_matches(statement, request.action)
        and _resource_matches(statement, policy.version, request.resource, context)
        and conditions_match(statement.conditions, context, policy.version)
    )


def _action_matches(statement: Statement, action: str) -> bool:
    listed = any(
        glob_match(raw_glob(pattern), action, ignore_case=True) for pattern in statement.actions
    )
    return listed != statement.not_action


def _resource_matches(
    statement: Statement, version: str | None, resource: str, context: Context
) -> bool:
    # A resource policy statement without Resource is about the resource it is attached to.
    if statement.resources is None:
        return True
    listed = any(
        glob is not None and glob_match(glob, resource)
        for glob in (
            expand(pattern, context, version, wildcards=True) for pattern in statement.resources
        )
    )
    return listed != statement.not_resource


# Principals


def _principal_grant(statement: Statement, principal: Principal) -> Grant:
    principals = statement.principals
    if principals is None:
        return Grant.NONE
    if statement.not_principal:
        return Grant.NONE if _excluded(principals, principal) else Grant.DIRECT
    if principals.everyone:
        return Grant.DIRECT
    if principal.is_anonymous:
        return Grant.NONE
    if principal.arn is not None and principal.arn in principals.aws:
        # Naming the root ARN is a grant to the account, not to the root alone.
        return Grant.ACCOUNT if principal.is_root else Grant.DIRECT
    if _account_named(principals, principal):
        return Grant.ACCOUNT
    return Grant.NONE


def _account_named(principals: Principals, principal: Principal) -> bool:
    account_id = principal.account_id
    if account_id is None:
        return False
    return account_id in principals.aws or root_arn(account_id) in principals.aws


def _excluded(principals: Principals, principal: Principal) -> bool:
    """Whether NotPrincipal lists the caller, so the statement does not apply to it.

    IAM checks the caller's account before the user, so a user is only left out when both
    its account and its own ARN are listed. Nobody lists an anonymous caller.
    """
    if principals.everyone:
        return True
    if principal.is_anonymous or not _account_named(principals, principal):
        return False
    return principal.is_root or principal.arn in principals.aws
