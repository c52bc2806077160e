"""Parsing IAM policy documents: realistic ECR policies are accepted, and every malformed
element is refused with a message naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecrd.auth.policy_document import PolicyDocumentInvalid, PolicyKind, parse_policy
from ecrd.errors import PolicyInvalid
from ecrd.registry.policies import check_identity_policy, check_resource_policy

PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
CANONICAL_USER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
REPOSITORY = "arn:aws:ecr:us-east-1:111111111111:repository/team/app"

# Examples after the ECR user guide's repository policy examples.
AWS_EXAMPLES: list[dict[str, Any]] = [
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowPull",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": PULL,
            }
        ],
    },
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowAll",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111111111111:user/push-pull-user-1"},
                "Action": ["ecr:*"],
            }
        ],
    },
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyOutsideNetwork",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "ecr:*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}},
            }
        ],
    },
    {
        "Version": "2008-10-17",
        "Statement": [
            {
                "Sid": "AllowPublicPull",
                "Effect": "Allow",
                "Principal": "*",
                "Action": PULL,
            },
            {
                "Sid": "AllowPushFromAccount",
                "Effect": "Allow",
                "Principal": {"AWS": ["111111111111", "arn:aws:iam::333333333333:role/ci"]},
                "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:Upload*"],
                "Resource": REPOSITORY,
            },
        ],
    },
    {
        # Registry policy for replication, as the ECR docs show it
        "Version": "2012-10-17",
        "Statement": {
            "Sid": "ReplicationAccessCrossAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": "arn:aws:ecr:us-west-2:111111111111:repository/*",
        },
    },
    {
        # Lambda's service principal, with a condition on the caller's ARN
        "Statement": [
            {
                "Sid": "LambdaECRImageRetrievalPolicy",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Condition": {
                    "StringLike": {"aws:sourceArn": "arn:aws:lambda:us-east-1:111111111111:*"}
                },
            }
        ],
    },
]


@pytest.mark.parametrize("document", AWS_EXAMPLES, ids=range(len(AWS_EXAMPLES)))
def test_realistic_resource_policies_are_accepted(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    parsed = parse_policy(text, "resource")
    assert parsed.text == text
    statements = document["Statement"]
    assert len(parsed.statements) == (len(statements) if isinstance(statements, list) else 1)
    assert check_resource_policy(text) == text


def test_identity_policy_with_not_action_and_conditions_is_accepted() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "ecr:Describe*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "NotAction": ["ecr:BatchGetImage"],
                    "NotResource": "arn:aws:ecr:*:111111111111:repository/sandbox/*",
                    "Condition": {
                        "ForAllValues:StringLike": {"aws:TagKeys": ["team", "env-*"]},
                        "BoolIfExists": {"aws:SecureTransport": False},
                        "NumericLessThan": {"test:n": 5},
                        "Null": {"aws:SourceIp": "true"},
                    },
                },
            ],
        }
    )
    parsed = parse_policy(text, "identity")
    deny = parsed.statements[1]
    assert deny.not_action and deny.not_resource and deny.effect == "Deny"
    by_operator = {condition.operator: condition for condition in deny.conditions}
    assert by_operator["StringLike"].qualifier == "ForAllValues"
    assert by_operator["Bool"].if_exists and by_operator["Bool"].values == ("false",)
    assert by_operator["NumericLessThan"].values == ("5",)
    assert check_identity_policy(text) == text


def test_principals_are_read_by_kind() -> None:
    document = parse_policy(
        json.dumps(
            {
                "Statement": {
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": ["*", "111111111111", "arn:aws:iam::222222222222:user/a/b"],
                        "Service": "ecr.amazonaws.com",
                        "Federated": "cognito-identity.amazonaws.com",
                        "CanonicalUser": CANONICAL_USER,
                    },
                    "Action": "*",
                }
            }
        ),
        "resource",
    )
    principals = document.statements[0].principals
    assert principals is not None and principals.everyone
    assert principals.aws == ("111111111111", "arn:aws:iam::222222222222:user/a/b")
    assert len(principals.others) == 3


def statement(**changes: Any) -> str:
    """A valid resource policy with its one statement's elements changed (None removes)."""
    element: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}
    for name, value in changes.items():
        if value is None:
            element.pop(name, None)
        else:
            element[name] = value
    return json.dumps({"Version": "2012-10-17", "Statement": [element]})


INVALID_RESOURCE_POLICIES = [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    (json.dumps({"Statement": []}), "Statement"),
    (json.dumps({"Version": "2012-10-17"}), "Statement"),
    (json.dumps({"Statement": "x"}), "Statement"),
    (json.dumps({"Statement": ["x"]}), "Statement"),
    (json.dumps({"Version": "2020-01-01", "Statement": {}}), "Version"),
    (json.dumps({"Id": 5, "Statement": {}}), "Id"),
    (json.dumps({"Statements": []}), "'Statements'"),
    (statement(Actions="ecr:*"), "unknown statement element 'Actions'"),
    (statement(Effect="allow"), "Effect must be Allow or Deny"),
    (statement(Effect=None), "Effect must be Allow or Deny"),
    (statement(Sid=7), "Sid"),
    (statement(Action=None), "Action"),
    (statement(NotAction="ecr:PutImage"), "both Action and NotAction"),
    (statement(Action="BatchGetImage"), "'BatchGetImage'"),
    (statement(Action="ecr:"), "'ecr:'"),
    (statement(Action=[]), "Action"),
    (statement(Action=["ecr:*", 5]), "Action"),
    (statement(Action="ecr:Get Image"), "'ecr:Get Image'"),
    (statement(Resource=REPOSITORY, NotResource="*"), "both Resource and NotResource"),
    (statement(Resource="repository/team/app"), "'repository/team/app'"),
    (statement(Principal=None), "Principal"),
    (statement(NotPrincipal="*"), "both Principal and NotPrincipal"),
    (statement(Principal="111111111111"), "Principal"),
    (statement(Principal={}), "Principal"),
    (statement(Principal={"Aws": "*"}), "'Aws'"),
    (statement(Principal={"AWS": "11111111111"}), "'11111111111'"),
    (statement(Principal={"AWS": "arn:aws:iam::111111111111:user/*"}), "user/*"),
    (statement(Principal={"AWS": "arn:aws:iam::*:root"}), "arn:aws:iam::*:root"),
    (statement(Principal={"AWS": "arn:aws:s3:::bucket"}), "arn:aws:s3:::bucket"),
    (statement(Principal={"AWS": []}), "Principal AWS"),
    (statement(Principal={"Service": 5}), "Principal Service"),
    (statement(Condition=[]), "Condition must be a JSON object"),
    (
        statement(Condition={"StringEqualz": {"k": "v"}}),
        "unknown condition operator 'StringEqualz'",
    ),
    (statement(Condition={"ForSomeValues:StringEquals": {"k": "v"}}), "ForSomeValues"),
    (statement(Condition={"NullIfExists": {"k": "true"}}), "Null"),
    (statement(Condition={"StringEquals": "v"}), "'StringEquals'"),
    (statement(Condition={"StringEquals": {"aws:SourceIp": None}}), "'aws:SourceIp'"),
    (statement(Condition={"StringEquals": {"aws:SourceIp": []}}), "'aws:SourceIp'"),
    (statement(Condition={"StringEquals": {"k": [{"a": 1}]}}), "'k'"),
]


@pytest.mark.parametrize(
    ("text", "named"), INVALID_RESOURCE_POLICIES, ids=range(len(INVALID_RESOURCE_POLICIES))
)
def test_malformed_resource_policy_is_refused_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(PolicyDocumentInvalid) as refused:
        parse_policy(text, "resource")
    assert named in refused.value.message
    # The registry's check reports the same message as its own error
    with pytest.raises(PolicyInvalid) as invalid:
        check_resource_policy(text)
    assert invalid.value.message == refused.value.message


def test_a_resource_policy_may_repeat_a_sid_as_ecr_allows() -> None:
    # given a repository policy whose two statements share a Sid
    text = json.dumps(
        {
            "Statement": [
                {"Sid": "Same", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
                {"Sid": "Same", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"},
            ]
        }
    )
    # when it is parsed and checked as ECR checks it, then both statements are kept
    document = parse_policy(text, "resource")
    assert [(s.sid, s.effect) for s in document.statements] == [("Same", "Allow"), ("Same", "Deny")]
    assert check_resource_policy(text) == text


def test_an_identity_policy_may_not_repeat_a_sid_as_iam_says() -> None:
    # given an identity policy whose two statements share a Sid
    text = json.dumps(
        {
            "Statement": [
                {"Sid": "Same", "Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
                {"Sid": "Same", "Effect": "Deny", "Action": "ecr:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "ecr:PutImage", "Resource": "*"},
            ]
        }
    )
    # when it is checked as a user's policy is when set, then IAM's rule refuses it
    with pytest.raises(PolicyInvalid) as refused:
        check_identity_policy(text)
    assert refused.value.message == (
        "Statement IDs (SID) in a single policy must be unique: 'Same' is used more than once"
    )
    # and statements without a Sid never clash
    unnamed = json.dumps({"Statement": [json.loads(text)["Statement"][2]] * 2})
    assert check_identity_policy(unnamed) == unnamed


@pytest.mark.parametrize(
    ("element", "named"),
    [
        ({"Principal": "*", "Resource": "*"}, "Principal"),
        ({"NotPrincipal": {"AWS": "111111111111"}, "Resource": "*"}, "NotPrincipal"),
        ({}, "Resource and NotResource"),
    ],
)
def test_identity_policy_needs_a_resource_and_no_principal(
    element: dict[str, Any], named: str
) -> None:
    text = json.dumps({"Statement": {"Effect": "Allow", "Action": "ecr:*", **element}})
    with pytest.raises(PolicyInvalid) as refused:
        check_identity_policy(text)
    assert named in refused.value.message


@pytest.mark.parametrize("kind", ["identity", "resource"])
def test_every_operator_form_is_known(kind: PolicyKind) -> None:
    operators = [
        "StringEquals",
        "StringNotEqualsIgnoreCase",
        "StringLikeIfExists",
        "ForAnyValue:StringNotLike",
        "ForAllValues:NumericGreaterThanEqualsIfExists",
        "DateLessThan",
        "Bool",
        "BinaryEquals",
        "NotIpAddressIfExists",
        "ArnNotLike",
        "Null",
    ]
    element: dict[str, Any] = {"Effect": "Deny", "Action": "*", "Resource": "*"}
    if kind == "resource":
        element["Principal"] = {"AWS": "*"}
    element["Condition"] = {operator: {"k:x": "1"} for operator in operators}
    document = parse_policy(json.dumps({"Statement": element}), kind)
    assert len(document.statements[0].conditions) == len(operators)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"StringEquals": {"ecr:ResourceTag/team": "a"}}, True),
        ({"StringLike": {"AWS:RESOURCETAG/env": "prod*"}}, True),
        ({"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}}, True),
        ({"StringEquals": {"aws:RequestTag/team": "a"}}, False),
        (None, False),
    ],
)
def test_mentions_resource_tags(condition: dict[str, Any] | None, expected: bool) -> None:
    document = parse_policy(statement(Condition=condition), "resource")
    assert document.mentions_resource_tags() is expected
