"""The access decision, after IAM's policy evaluation logic: explicit denies win; within an
account either side may allow; across accounts both must; anonymous callers need a policy
that names everyone. Also Action/Resource/Principal matching."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ecrd.auth.evaluation import AccessRequest, Decision, evaluate
from ecrd.auth.policy_document import PolicyDocument, parse_policy
from ecrd.auth.principals import ANONYMOUS, Principal, root_of, user_arn

OWNER = "111111111111"
OTHER = "222222222222"
REPO = f"arn:aws:ecr:us-east-1:{OWNER}:repository/team/app"
PULL = "ecr:BatchGetImage"
PUSH = "ecr:PutImage"

NO_IDENTITY = f"because no identity-based policy allows the {PULL} action"
NO_RESOURCE = f"because no resource-based policy allows the {PULL} action"
IDENTITY_DENY = "with an explicit deny in an identity-based policy"
RESOURCE_DENY = "with an explicit deny in a resource-based policy"


def user(account_id: str, name: str) -> Principal:
    return Principal(account_id=account_id, arn=user_arn(account_id, name), user_name=name)


ALICE = user(OWNER, "alice")  # of the resource's account
BOB = user(OTHER, "bob")  # of another account


def identity(*statements: dict[str, Any], version: str = "2012-10-17") -> PolicyDocument:
    body = [s if "NotResource" in s else {"Resource": "*", **s} for s in statements]
    return parse_policy(json.dumps({"Version": version, "Statement": body}), "identity")


def resource(*statements: dict[str, Any], version: str = "2012-10-17") -> PolicyDocument:
    return parse_policy(json.dumps({"Version": version, "Statement": list(statements)}), "resource")


def allow(action: str | list[str] = PULL, **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, **more}


def deny(action: str | list[str] = PULL, **more: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, **more}


def decide(
    principal: Principal,
    *,
    identity_policies: Sequence[PolicyDocument] = (),
    resource_policies: Sequence[PolicyDocument] = (),
    action: str = PULL,
    resource_arn: str = REPO,
    context: Mapping[str, str | Sequence[str]] | None = None,
) -> Decision:
    return evaluate(
        AccessRequest(
            principal=principal,
            action=action,
            resource=resource_arn,
            resource_account=OWNER,
            context=context or {},
            identity_policies=identity_policies,
            resource_policies=resource_policies,
        )
    )


# The decision table

ALLOW_ALL_IDENTITY = identity(allow("ecr:*"))
GRANT_EVERYONE = resource(allow(Principal="*"))
GRANT_EVERYONE_AWS = resource(allow(Principal={"AWS": "*"}))
GRANT_OWNER_ACCOUNT = resource(allow(Principal={"AWS": OWNER}))
GRANT_OWNER_ROOT = resource(allow(Principal={"AWS": f"arn:aws:iam::{OWNER}:root"}))
GRANT_ALICE = resource(allow(Principal={"AWS": ALICE.arn}))
GRANT_OTHER_ACCOUNT = resource(allow(Principal={"AWS": OTHER}))
GRANT_OTHER_ROOT = resource(allow(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}))
GRANT_BOB = resource(allow(Principal={"AWS": BOB.arn}))
GRANT_ALL_BUT_BOB = resource(allow(NotPrincipal={"AWS": [OTHER, str(BOB.arn)]}))
DENY_EVERYONE = resource(deny(Principal="*"))
DENY_ALICE_IDENTITY = identity(deny("ecr:*"))

DECISIONS: list[tuple[str, Principal, list[PolicyDocument], list[PolicyDocument], str]] = [
    # (case, principal, identity policies, resource policies, "" if allowed else reason)
    ("owner root needs no policy", root_of(OWNER), [], [], ""),
    ("same-account user without any allow", ALICE, [], [], NO_IDENTITY),
    ("same-account user with identity allow", ALICE, [ALLOW_ALL_IDENTITY], [], ""),
    ("identity allow for another action", ALICE, [identity(allow(PUSH))], [], NO_IDENTITY),
    ("same-account user named directly", ALICE, [], [GRANT_ALICE], ""),
    ("same-account user under Principal *", ALICE, [], [GRANT_EVERYONE], ""),
    ('same-account user under {"AWS": "*"}', ALICE, [], [GRANT_EVERYONE_AWS], ""),
    ("own account id grant delegates to IAM", ALICE, [], [GRANT_OWNER_ACCOUNT], NO_IDENTITY),
    ("own root ARN grant delegates to IAM", ALICE, [], [GRANT_OWNER_ROOT], NO_IDENTITY),
    ("account grant plus identity allow", ALICE, [ALLOW_ALL_IDENTITY], [GRANT_OWNER_ACCOUNT], ""),
    ("same-account user under NotPrincipal", ALICE, [], [GRANT_ALL_BUT_BOB], ""),
    ("grant to another user", ALICE, [], [GRANT_BOB], NO_IDENTITY),
    # Cross account: both sides must allow
    ("cross-account user, nothing", BOB, [], [], NO_RESOURCE),
    ("cross-account user, identity only", BOB, [ALLOW_ALL_IDENTITY], [], NO_RESOURCE),
    ("cross-account user, resource only", BOB, [], [GRANT_BOB], NO_IDENTITY),
    ("cross-account user, both (direct)", BOB, [ALLOW_ALL_IDENTITY], [GRANT_BOB], ""),
    ("cross-account user, both (account)", BOB, [ALLOW_ALL_IDENTITY], [GRANT_OTHER_ACCOUNT], ""),
    ("cross-account user, both (root ARN)", BOB, [ALLOW_ALL_IDENTITY], [GRANT_OTHER_ROOT], ""),
    ("cross-account user, both (*)", BOB, [ALLOW_ALL_IDENTITY], [GRANT_EVERYONE], ""),
    (
        "cross-account user, grant to owner",
        BOB,
        [ALLOW_ALL_IDENTITY],
        [GRANT_OWNER_ACCOUNT],
        NO_RESOURCE,
    ),
    ("cross-account user, * without identity", BOB, [], [GRANT_EVERYONE], NO_IDENTITY),
    (
        "cross-account user excluded by NotPrincipal",
        BOB,
        [ALLOW_ALL_IDENTITY],
        [GRANT_ALL_BUT_BOB],
        NO_RESOURCE,
    ),
    ("other root with account grant", root_of(OTHER), [], [GRANT_OTHER_ACCOUNT], ""),
    ("other root with root ARN grant", root_of(OTHER), [], [GRANT_OTHER_ROOT], ""),
    ("other root without resource grant", root_of(OTHER), [], [], NO_RESOURCE),
    ("other root, grant to a user only", root_of(OTHER), [], [GRANT_BOB], NO_RESOURCE),
    # Anonymous callers: only a grant to everyone lets them in
    ("anonymous, nothing", ANONYMOUS, [], [], NO_RESOURCE),
    ("anonymous under Principal *", ANONYMOUS, [], [GRANT_EVERYONE], ""),
    ('anonymous under {"AWS": "*"}', ANONYMOUS, [], [GRANT_EVERYONE_AWS], ""),
    ("anonymous under NotPrincipal", ANONYMOUS, [], [GRANT_ALL_BUT_BOB], ""),
    ("anonymous, account grant", ANONYMOUS, [], [GRANT_OWNER_ACCOUNT], NO_RESOURCE),
    ("anonymous ignores identity policies", ANONYMOUS, [ALLOW_ALL_IDENTITY], [], NO_RESOURCE),
    # Explicit deny beats every allow, the root's included
    (
        "identity deny beats identity allow",
        ALICE,
        [ALLOW_ALL_IDENTITY, DENY_ALICE_IDENTITY],
        [],
        IDENTITY_DENY,
    ),
    (
        "identity deny beats direct grant",
        ALICE,
        [DENY_ALICE_IDENTITY],
        [GRANT_ALICE],
        IDENTITY_DENY,
    ),
    (
        "resource deny beats identity allow",
        ALICE,
        [ALLOW_ALL_IDENTITY],
        [DENY_EVERYONE],
        RESOURCE_DENY,
    ),
    ("resource deny beats root", root_of(OWNER), [], [DENY_EVERYONE], RESOURCE_DENY),
    (
        "resource deny beats other root",
        root_of(OTHER),
        [],
        [GRANT_EVERYONE, DENY_EVERYONE],
        RESOURCE_DENY,
    ),
    (
        "resource deny beats anonymous grant",
        ANONYMOUS,
        [],
        [GRANT_EVERYONE, DENY_EVERYONE],
        RESOURCE_DENY,
    ),
    (
        "deny in same policy as allow",
        ALICE,
        [],
        [resource(allow(Principal="*"), deny(Principal="*"))],
        RESOURCE_DENY,
    ),
    (
        "deny to account covers its users",
        ALICE,
        [ALLOW_ALL_IDENTITY],
        [resource(deny(Principal={"AWS": OWNER}))],
        RESOURCE_DENY,
    ),
    (
        "deny to another user does not apply",
        ALICE,
        [ALLOW_ALL_IDENTITY],
        [resource(deny(Principal={"AWS": BOB.arn}))],
        "",
    ),
    (
        "root's identity policies still deny",
        root_of(OWNER),
        [DENY_ALICE_IDENTITY],
        [],
        IDENTITY_DENY,
    ),
]


@pytest.mark.parametrize(
    ("principal", "identity_policies", "resource_policies", "reason"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decision(
    principal: Principal,
    identity_policies: list[PolicyDocument],
    resource_policies: list[PolicyDocument],
    reason: str,
) -> None:
    decision = decide(
        principal, identity_policies=identity_policies, resource_policies=resource_policies
    )
    assert decision == Decision(allowed=not reason, reason=reason)


def test_both_resource_policies_count() -> None:
    # A repository policy and a registry policy are both resource-based policies.
    repository_policy = resource(allow(PUSH, Principal="*"))
    registry_policy = resource(allow(Principal={"AWS": BOB.arn}))
    decision = decide(
        BOB,
        identity_policies=[ALLOW_ALL_IDENTITY],
        resource_policies=[repository_policy, registry_policy],
    )
    assert decision.allowed


def test_not_principal_needs_the_account_listed_too() -> None:
    # IAM checks the account before the user: listing only the user does not exclude it.
    only_user = resource(deny(NotPrincipal={"AWS": BOB.arn}))
    user_and_account = resource(deny(NotPrincipal={"AWS": [BOB.arn, OTHER]}))
    grant = resource(allow(Principal="*"))
    assert (
        decide(
            BOB, identity_policies=[ALLOW_ALL_IDENTITY], resource_policies=[only_user, grant]
        ).reason
        == RESOURCE_DENY
    )
    assert decide(
        BOB, identity_policies=[ALLOW_ALL_IDENTITY], resource_policies=[user_and_account, grant]
    ).allowed
    # Listing the account alone leaves out its root, but not its users
    only_account = resource(deny(NotPrincipal={"AWS": OTHER}))
    assert decide(root_of(OTHER), resource_policies=[only_account, grant]).allowed
    denied = decide(BOB, identity_policies=[ALLOW_ALL_IDENTITY], resource_policies=[only_account])
    assert denied.reason == RESOURCE_DENY
    # Everyone not listed is denied, anonymous callers included
    assert decide(ANONYMOUS, resource_policies=[user_and_account, grant]).reason == RESOURCE_DENY


def test_service_and_federated_principals_match_no_caller() -> None:
    policy = resource(
        allow(Principal={"Service": "lambda.amazonaws.com", "Federated": "accounts.google.com"})
    )
    for principal in (ALICE, BOB, ANONYMOUS):
        assert not decide(principal, resource_policies=[policy]).allowed


def test_denial_message_uses_aws_wording() -> None:
    request = AccessRequest(
        principal=ALICE,
        action=PUSH,
        resource=REPO,
        resource_account=OWNER,
        context={},
    )
    decision = evaluate(request)
    assert decision.denial_message(request) == (
        f"User: arn:aws:iam::{OWNER}:user/alice is not authorized to perform: ecr:PutImage on "
        f"resource: {REPO} because no identity-based policy allows the ecr:PutImage action"
    )
    anonymous = AccessRequest(ANONYMOUS, PULL, REPO, OWNER, {})
    assert evaluate(anonymous).denial_message(anonymous).startswith("User: anonymous is not")


# Action and NotAction


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("ecr:BatchGetImage", "ecr:BatchGetImage", True),
        ("ECR:batchgetimage", "ecr:BatchGetImage", True),
        ("ecr:*", "ecr:PutImage", True),
        ("*", "ecr:PutImage", True),
        ("ecr:Batch*", "ecr:BatchGetImage", True),
        ("ecr:Batch*", "ecr:PutImage", False),
        ("ecr:Get?uthorizationToken", "ecr:GetAuthorizationToken", True),
        ("ecr:Get?Token", "ecr:GetAuthorizationToken", False),
        ("s3:*", "ecr:PutImage", False),
        ("ecr:PutImage", "ecr:PutImageTagMutability", False),
    ],
)
def test_action_patterns(pattern: str, action: str, expected: bool) -> None:
    policy = identity(allow(pattern))
    assert decide(ALICE, identity_policies=[policy], action=action).allowed is expected


@pytest.mark.parametrize(
    ("not_action", "action", "expected"),
    [
        ("ecr:Delete*", "ecr:BatchGetImage", True),
        ("ecr:Delete*", "ecr:DeleteRepository", False),
        (["ecr:PutImage", "ecr:Batch*"], "ecr:BatchGetImage", False),
        ("s3:*", "ecr:PutImage", True),
    ],
)
def test_not_action(not_action: str | list[str], action: str, expected: bool) -> None:
    policy = identity({"Effect": "Allow", "NotAction": not_action})
    assert decide(ALICE, identity_policies=[policy], action=action).allowed is expected


# Resource and NotResource


@pytest.mark.parametrize(
    ("pattern", "resource_arn", "expected"),
    [
        (REPO, REPO, True),
        ("*", REPO, True),
        ("*", "*", True),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/*", REPO, True),
        (f"arn:aws:ecr:*:{OWNER}:repository/team/*", REPO, True),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/team/ap?", REPO, True),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/Team/app", REPO, False),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/other/*", REPO, False),
        (f"arn:aws:ecr:us-east-1:{OTHER}:repository/*", REPO, False),
        # an action on no resource is only matched by "*"
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/*", "*", False),
    ],
)
def test_resource_patterns(pattern: str, resource_arn: str, expected: bool) -> None:
    policy = identity(allow(Resource=pattern))
    decision = decide(ALICE, identity_policies=[policy], resource_arn=resource_arn)
    assert decision.allowed is expected


@pytest.mark.parametrize(
    ("not_resource", "expected"),
    [
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/secret/*", True),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/team/*", False),
    ],
)
def test_not_resource(not_resource: str, expected: bool) -> None:
    policy = identity({"Effect": "Allow", "Action": PULL, "NotResource": not_resource})
    assert decide(ALICE, identity_policies=[policy]).allowed is expected


def test_resource_statement_without_resource_covers_its_repository() -> None:
    with_resource = resource(allow(Principal="*", Resource=f"arn:aws:ecr:*:{OWNER}:repository/x"))
    assert decide(ANONYMOUS, resource_policies=[GRANT_EVERYONE]).allowed
    assert not decide(ANONYMOUS, resource_policies=[with_resource]).allowed


@pytest.mark.parametrize(
    ("pattern", "version", "expected"),
    [
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/${{aws:username}}/*", "2012-10-17", True),
        ("arn:aws:ecr:us-east-1:${aws:PrincipalAccount}:repository/*", "2012-10-17", True),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/${{aws:username}}/*", "2008-10-17", False),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/${{test:missing}}/*", "2012-10-17", False),
        (f"arn:aws:ecr:us-east-1:{OWNER}:repository/${{test:star}}", "2012-10-17", False),
    ],
)
def test_policy_variables_in_resource(pattern: str, version: str, expected: bool) -> None:
    # aws:username and aws:PrincipalAccount come from the caller; test:star is "*"
    policy = identity(allow(Resource=pattern), version=version)
    alice_repo = f"arn:aws:ecr:us-east-1:{OWNER}:repository/alice/app"
    decision = decide(
        ALICE, identity_policies=[policy], resource_arn=alice_repo, context={"test:star": "*"}
    )
    assert decision.allowed is expected


# Conditions in the decision (AWS's example: deny outside a network)

DENY_OUTSIDE = resource(
    allow("ecr:*", Principal="*"),
    deny("ecr:*", Principal="*", Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"aws:SourceIp": "192.0.2.10"}, ""),
        ({"aws:sourceip": "198.51.100.1"}, RESOURCE_DENY),
        # no source address at all: NotIpAddress holds, so the deny applies
        ({}, RESOURCE_DENY),
    ],
)
def test_deny_outside_network(context: dict[str, str], expected: str) -> None:
    decision = decide(ANONYMOUS, resource_policies=[DENY_OUTSIDE], context=context)
    assert decision.reason == expected


def test_allow_with_unmet_condition_does_not_apply() -> None:
    policy = identity(allow(Condition={"Bool": {"aws:SecureTransport": True}}))
    insecure = {"aws:SecureTransport": "false"}
    assert not decide(ALICE, identity_policies=[policy], context=insecure).allowed
    assert decide(
        ALICE, identity_policies=[policy], context={"aws:SecureTransport": "true"}
    ).allowed


def test_principal_keys_are_derived_from_the_caller() -> None:
    policy = resource(
        allow(
            Principal="*",
            Condition={
                "StringEquals": {"aws:PrincipalAccount": OWNER, "aws:PrincipalType": "User"},
                "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{OWNER}:user/*"},
            },
        )
    )
    assert decide(ALICE, resource_policies=[policy]).allowed
    assert not decide(ANONYMOUS, resource_policies=[policy]).allowed
    assert not decide(user(OTHER, "alice"), resource_policies=[policy]).allowed
