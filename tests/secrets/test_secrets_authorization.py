"""Who may use which secret: `secretsmanager:<Operation>` on the secret's ARN, evaluated by the
same IAM logic as ECR's actions (AWS's AccessDeniedException wording), with policies made the
way an operator makes them (`ecrd keys create --policy`)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api_errors import expect_error
from tests.auth.test_api_authorization import create_key
from tests.conftest import ACCOUNT_ID, REGION, EcrdServer
from tests.secrets.conftest import unique_name

DENIED = "AccessDeniedException"


def user_secrets(server: EcrdServer, *statements: dict[str, Any]) -> tuple[Any, str]:
    """A Secrets Manager client of a new user with one policy of `statements` (or none)."""
    name = f"user-{uuid.uuid4().hex[:10]}"
    policies = [{"Version": "2012-10-17", "Statement": list(statements)}] if statements else []
    key = create_key(server, ACCOUNT_ID, user=name, policies=policies)
    return server.ecr_as(key, "secretsmanager"), name


def test_a_user_without_secretsmanager_permissions_is_denied(
    server: EcrdServer, secrets: Any
) -> None:
    created = secrets.create_secret(Name=unique_name(), SecretString="root's")
    user, name = user_secrets(server, {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"})
    message = expect_error(DENIED, user.get_secret_value, SecretId=created["Name"])
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/{name} is not authorized to perform: "
        f"secretsmanager:GetSecretValue on resource: {created['ARN']} because no "
        "identity-based policy allows the secretsmanager:GetSecretValue action"
    )
    expect_error(DENIED, user.list_secrets)
    new_name = unique_name()
    message = expect_error(DENIED, user.create_secret, Name=new_name, SecretString="v")
    assert (
        f"on resource: arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{new_name}-" in message
    )
    expect_error("ResourceNotFoundException", secrets.describe_secret, SecretId=new_name)


def test_a_policy_scoped_to_one_secret_allows_it_and_nothing_else(
    server: EcrdServer, secrets: Any
) -> None:
    prefix = unique_name("scoped")
    mine = secrets.create_secret(Name=f"{prefix}/mine", SecretString="yes")
    other = secrets.create_secret(Name=f"{prefix}/other", SecretString="no")
    resource = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{prefix}/mine-??????"
    user, _ = user_secrets(
        server,
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": resource,
        },
    )
    assert user.get_secret_value(SecretId=mine["ARN"])["SecretString"] == "yes"
    assert user.describe_secret(SecretId=f"{prefix}/mine")["ARN"] == mine["ARN"]
    expect_error(DENIED, user.get_secret_value, SecretId=other["ARN"])
    expect_error(DENIED, user.put_secret_value, SecretId=mine["ARN"], SecretString="changed")
    assert secrets.get_secret_value(SecretId=mine["ARN"])["SecretString"] == "yes"


def test_an_explicit_deny_wins_over_an_allow(server: EcrdServer, secrets: Any) -> None:
    created = secrets.create_secret(Name=unique_name(), SecretString="v")
    user, _ = user_secrets(
        server,
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:DeleteSecret", "Resource": created["ARN"]},
    )
    assert user.get_secret_value(SecretId=created["ARN"])["SecretString"] == "v"
    message = expect_error(DENIED, user.delete_secret, SecretId=created["ARN"])
    assert message.endswith("with an explicit deny in an identity-based policy")
    assert "DeletedDate" not in secrets.describe_secret(SecretId=created["ARN"])
    # the user may make secrets of its own, with tags its policy allows
    made = user.create_secret(
        Name=unique_name(), SecretString="v", Tags=[{"Key": "team", "Value": "a"}]
    )
    assert user.describe_secret(SecretId=made["ARN"])["Tags"] == [{"Key": "team", "Value": "a"}]


def test_request_tags_are_condition_keys(server: EcrdServer) -> None:
    user, _ = user_secrets(
        server,
        {
            "Effect": "Allow",
            "Action": "secretsmanager:CreateSecret",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/team": "platform"}},
        },
    )
    user.create_secret(
        Name=unique_name(), SecretString="v", Tags=[{"Key": "team", "Value": "platform"}]
    )
    expect_error(
        DENIED,
        user.create_secret,
        Name=unique_name(),
        SecretString="v",
        Tags=[{"Key": "team", "Value": "other"}],
    )
