"""Who may do what through the ECR API: IAM's policy evaluation logic, through boto3 against
the real server.

The rules (AWS IAM "Policy evaluation logic" and the ECR Service Authorization Reference):
an account's root may do everything in its account; within one account an Allow in either an
identity policy or a resource policy (repository or registry policy) naming the caller is
enough; across accounts both the resource's policy and the caller's identity must allow; an
explicit Deny anywhere wins. The AccessDeniedException message is AWS's:
"User: <arn> is not authorized to perform: ecr:<Action> on resource: <arn> <reason>".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from ecrd.cli import main as ecrd_command
from tests.api_errors import expect_error
from tests.conftest import ACCOUNT_ID, REGION, AccessKeyPair, EcrdServer, clean_environment

OTHER_ACCOUNT = "111111111111"
DENIED = "AccessDeniedException"
INVALID = "InvalidParameterException"
INVALID_REPOSITORY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid repository policy provided'"
)
INVALID_REGISTRY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid registry policy provided'"
)
NO_IDENTITY_ALLOW = "because no identity-based policy allows the {action} action"
NO_RESOURCE_ALLOW = "because no resource-based policy allows the {action} action"
IDENTITY_DENY = "with an explicit deny in an identity-based policy"
RESOURCE_DENY = "with an explicit deny in a resource-based policy"
PULL_ACTIONS = [
    "ecr:BatchGetImage",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:DescribeImages",
]


# Helpers


def unique_name(prefix: str = "authz") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def unique_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def unique_account() -> str:
    """An account no other test uses, so its registry policy is the test's own."""
    return "2" + "".join(random.choice("0123456789") for _ in range(11))


def repository_arn(name: str, account_id: str = ACCOUNT_ID, region: str = REGION) -> str:
    return f"arn:aws:ecr:{region}:{account_id}:repository/{name}"


def user_arn(name: str, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account_id}:user/{name}"


def identity_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def resource_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def denial(principal_arn: str, action: str, resource: str, reason: str) -> str:
    """AWS's AccessDeniedException message."""
    return (
        f"User: {principal_arn} is not authorized to perform: {action} on resource: "
        f"{resource} {reason}"
    )


def expect_denied(
    principal_arn: str,
    action: str,
    resource: str,
    reason: str,
    operation: Callable[..., Any],
    **arguments: Any,
) -> None:
    message = expect_error(DENIED, operation, **arguments)
    assert message == denial(principal_arn, action, resource, reason)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def push_image(ecr: Any, repository: str, tag: str) -> str:
    """Upload a config and a layer through the layer API and put an OCI manifest; return its
    digest."""
    descriptors = []
    for data in (b'{"architecture":"amd64","os":"linux"}', f"layer {uuid.uuid4()}".encode()):
        upload_id = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(data) - 1,
            layerPartBlob=data,
        )
        ecr.complete_layer_upload(
            repositoryName=repository, uploadId=upload_id, layerDigests=[digest_of(data)]
        )
        descriptors.append({"digest": digest_of(data), "size": len(data)})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **descriptors[0]},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **descriptors[1]}
            ],
        }
    )
    ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
    return digest_of(manifest.encode())


class Repository:
    """A repository of the default account made by the root, deleted afterwards."""

    def __init__(self, server: EcrdServer, prefix: str = "authz", **create: Any) -> None:
        self.root = server.ecr()
        self.name = unique_name(prefix)
        self.root.create_repository(repositoryName=self.name, **create)
        self.arn = repository_arn(self.name)

    def set_policy(self, *statements: dict[str, Any]) -> None:
        self.root.set_repository_policy(
            repositoryName=self.name, policyText=resource_policy(*statements)
        )

    def delete(self) -> None:
        self.root.delete_repository(repositoryName=self.name, force=True)


@pytest.fixture
def repository(server: EcrdServer) -> Iterator[Repository]:
    made = Repository(server)
    yield made
    made.delete()


def create_key(
    server: EcrdServer,
    account: str = ACCOUNT_ID,
    user: str | None = None,
    policies: Sequence[dict[str, Any]] = (),
) -> AccessKeyPair:
    """`ecrd keys create` on the server's store, as `server.create_key` does, but run in this
    process (click's runner) to save a Python start per key."""
    arguments = ["keys", "create", "--account", account, *server.store_arguments()]
    if user is not None:
        arguments += ["--user", user]
    for policy in policies:
        path = server.data_dir.parent / f"policy-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(policy))
        arguments += ["--policy", str(path)]
    unset: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ECRD_")}
    result = CliRunner().invoke(ecrd_command, arguments, env=unset)
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    return AccessKeyPair(created["AccessKeyId"], created["SecretAccessKey"], created["Arn"])


def user_key(
    server: EcrdServer, *statements: dict[str, Any], account: str = ACCOUNT_ID
) -> tuple[AccessKeyPair, str]:
    """A key of a new user of `account`, with one identity policy of `statements` (none when
    no statement is given); returns the key and the user's name."""
    name = unique_user()
    policies = [identity_policy(*statements)] if statements else []
    return create_key(server, account, user=name, policies=policies), name


# The account's root


def test_root_of_the_account_may_do_everything_in_it(server: EcrdServer) -> None:
    # given the default account's root, with no policy at all
    ecr = server.ecr()
    name = unique_name()

    # when it creates, pushes to, reads, and deletes a repository
    ecr.create_repository(repositoryName=name)
    digest = push_image(ecr, name, "v1")
    described = ecr.describe_images(repositoryName=name)["imageDetails"]
    token = ecr.get_authorization_token()["authorizationData"]
    ecr.delete_repository(repositoryName=name, force=True)

    # then every call was allowed
    assert [image["imageDigest"] for image in described] == [digest]
    assert token[0]["authorizationToken"]


# Same account: identity policies


def test_a_user_without_any_policy_is_denied_by_the_identity_rule(server: EcrdServer) -> None:
    # given a user of the account with no identity policy
    key, name = user_key(server)
    assert key.arn == user_arn(name)
    repository = unique_name()

    # when it creates a repository, then AWS's exact AccessDenied message
    message = expect_error(DENIED, server.ecr_as(key).create_repository, repositoryName=repository)
    assert message == (
        f"User: arn:aws:iam::000000000000:user/{name} is not authorized to perform: "
        f"ecr:CreateRepository on resource: arn:aws:ecr:us-east-1:000000000000:repository/"
        f"{repository} because no identity-based policy allows the ecr:CreateRepository action"
    )
    # and nothing was created
    expect_error(
        "RepositoryNotFoundException",
        server.ecr().describe_repositories,
        repositoryNames=[repository],
    )


def test_an_identity_policy_allows_only_the_actions_it_names(
    server: EcrdServer, repository: Repository
) -> None:
    # given a user allowed ecr:Describe* on everything
    key, name = user_key(server, {"Effect": "Allow", "Action": "ecr:Describe*", "Resource": "*"})
    ecr = server.ecr_as(key)

    # when it describes, then it may
    found = ecr.describe_repositories(repositoryNames=[repository.name])["repositories"]
    assert [found_one["repositoryArn"] for found_one in found] == [repository.arn]
    assert ecr.describe_images(repositoryName=repository.name)["imageDetails"] == []

    # when it creates a repository, then it may not
    other = unique_name()
    expect_denied(
        user_arn(name),
        "ecr:CreateRepository",
        repository_arn(other),
        NO_IDENTITY_ALLOW.format(action="ecr:CreateRepository"),
        ecr.create_repository,
        repositoryName=other,
    )


def test_a_resource_pattern_allows_matching_repositories_only(server: EcrdServer) -> None:
    # given a user allowed everything on repository/team-a/*
    key, name = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:*",
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/team-a/*",
        },
    )
    ecr = server.ecr_as(key)
    team_a = f"team-a/{uuid.uuid4().hex[:10]}"
    team_b = f"team-b/{uuid.uuid4().hex[:10]}"

    # when it creates a team-a repository, then it may
    try:
        created = ecr.create_repository(repositoryName=team_a)["repository"]
        assert created["repositoryArn"] == repository_arn(team_a)
    finally:
        server.ecr().delete_repository(repositoryName=team_a, force=True)

    # when it creates a team-b repository, then it may not
    expect_denied(
        user_arn(name),
        "ecr:CreateRepository",
        repository_arn(team_b),
        NO_IDENTITY_ALLOW.format(action="ecr:CreateRepository"),
        ecr.create_repository,
        repositoryName=team_b,
    )


def test_not_action_allows_every_action_but_the_listed_ones(server: EcrdServer) -> None:
    # given a user allowed everything except ecr:DeleteRepository
    key, name = user_key(
        server, {"Effect": "Allow", "NotAction": "ecr:DeleteRepository", "Resource": "*"}
    )
    ecr = server.ecr_as(key)
    repository = unique_name()

    try:
        # when it creates a repository, then it may
        ecr.create_repository(repositoryName=repository)

        # when it deletes it, then it may not
        expect_denied(
            user_arn(name),
            "ecr:DeleteRepository",
            repository_arn(repository),
            NO_IDENTITY_ALLOW.format(action="ecr:DeleteRepository"),
            ecr.delete_repository,
            repositoryName=repository,
        )
    finally:
        server.ecr().delete_repository(repositoryName=repository, force=True)


@pytest.mark.parametrize(
    ("network", "allowed"), [("127.0.0.0/8", True), ("10.0.0.0/8", False)], ids=["in", "out"]
)
def test_a_source_ip_condition_allows_only_callers_from_the_network(
    server: EcrdServer, repository: Repository, network: str, allowed: bool
) -> None:
    # given a user allowed to describe only from `network` (the tests call from 127.0.0.1)
    key, name = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:DescribeRepositories",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": network}},
        },
    )
    ecr = server.ecr_as(key)

    # when it describes the repository, then only callers from the network may
    if allowed:
        found = ecr.describe_repositories(repositoryNames=[repository.name])["repositories"]
        assert [one["repositoryName"] for one in found] == [repository.name]
    else:
        expect_denied(
            user_arn(name),
            "ecr:DescribeRepositories",
            repository.arn,
            NO_IDENTITY_ALLOW.format(action="ecr:DescribeRepositories"),
            ecr.describe_repositories,
            repositoryNames=[repository.name],
        )


def test_a_resource_tag_condition_allows_only_repositories_with_the_tag(
    server: EcrdServer,
) -> None:
    # given repositories tagged team=a and team=b, and a user allowed to list images only
    # where ecr:ResourceTag/team is "a"
    tagged_a = Repository(server, tags=[{"Key": "team", "Value": "a"}])
    tagged_b = Repository(server, tags=[{"Key": "team", "Value": "b"}])
    key, name = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:ListImages",
            "Resource": "*",
            "Condition": {"StringEquals": {"ecr:ResourceTag/team": "a"}},
        },
    )
    ecr = server.ecr_as(key)
    try:
        # when it lists images of each, then team=a is allowed and team=b denied
        assert ecr.list_images(repositoryName=tagged_a.name)["imageIds"] == []
        expect_denied(
            user_arn(name),
            "ecr:ListImages",
            tagged_b.arn,
            NO_IDENTITY_ALLOW.format(action="ecr:ListImages"),
            ecr.list_images,
            repositoryName=tagged_b.name,
        )
    finally:
        tagged_a.delete()
        tagged_b.delete()


def test_the_username_policy_variable_scopes_a_user_to_its_own_prefix(
    server: EcrdServer,
) -> None:
    # given a user allowed to create repositories under its own name only
    key, name = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:CreateRepository",
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/${{aws:username}}/*",
        },
    )
    ecr = server.ecr_as(key)
    own = f"{name}/app"
    foreign = f"{unique_user()}/app"

    # when it creates one under its name, then it may
    try:
        assert ecr.create_repository(repositoryName=own)["repository"]["repositoryName"] == own
    finally:
        server.ecr().delete_repository(repositoryName=own, force=True)

    # when it creates one under another user's name, then it may not
    expect_denied(
        user_arn(name),
        "ecr:CreateRepository",
        repository_arn(foreign),
        NO_IDENTITY_ALLOW.format(action="ecr:CreateRepository"),
        ecr.create_repository,
        repositoryName=foreign,
    )


def test_get_authorization_token_needs_the_action_on_every_resource(
    server: EcrdServer,
) -> None:
    # given a user allowed GetAuthorizationToken on "*", and one allowed it only on
    # repository ARNs (GetAuthorizationToken acts on no repository: its resource is "*")
    allowed, _ = user_key(
        server, {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    )
    scoped, scoped_name = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/*",
        },
    )

    # when each asks for a token, then only the first gets one
    data = server.ecr_as(allowed).get_authorization_token()["authorizationData"]
    assert data and data[0]["authorizationToken"]
    expect_denied(
        user_arn(scoped_name),
        "ecr:GetAuthorizationToken",
        "*",
        NO_IDENTITY_ALLOW.format(action="ecr:GetAuthorizationToken"),
        server.ecr_as(scoped).get_authorization_token,
    )


# Same account: resource policies and explicit denies


def test_a_repository_policy_naming_the_user_allows_it_without_an_identity_policy(
    server: EcrdServer, repository: Repository
) -> None:
    # given a user with no identity policy, named in the repository's policy for ListImages
    key, name = user_key(server)
    repository.set_policy(
        {
            "Sid": "UserMayList",
            "Effect": "Allow",
            "Principal": {"AWS": user_arn(name)},
            "Action": "ecr:ListImages",
        }
    )
    ecr = server.ecr_as(key)

    # when it lists the images, then it may
    assert ecr.list_images(repositoryName=repository.name)["imageIds"] == []
    # and an action the policy does not name is still denied
    expect_denied(
        user_arn(name),
        "ecr:DescribeImages",
        repository.arn,
        NO_IDENTITY_ALLOW.format(action="ecr:DescribeImages"),
        ecr.describe_images,
        repositoryName=repository.name,
    )


def test_an_explicit_deny_in_the_repository_policy_beats_root_and_identity_allows(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository whose policy denies ListImages to everyone, and a user allowed ecr:*
    repository.set_policy(
        {"Sid": "NoListing", "Effect": "Deny", "Principal": "*", "Action": "ecr:ListImages"}
    )
    key, name = user_key(server, {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"})

    # when the root and the user list its images, then both are denied by the explicit deny
    callers = [
        (f"arn:aws:iam::{ACCOUNT_ID}:root", server.ecr()),
        (user_arn(name), server.ecr_as(key)),
    ]
    for arn, client in callers:
        expect_denied(
            arn,
            "ecr:ListImages",
            repository.arn,
            RESOURCE_DENY,
            client.list_images,
            repositoryName=repository.name,
        )
    # and other actions are still allowed
    assert server.ecr_as(key).describe_images(repositoryName=repository.name)["imageDetails"] == []


def test_an_explicit_deny_in_an_identity_policy_beats_every_allow(
    server: EcrdServer, repository: Repository
) -> None:
    # given a user allowed ecr:* but denied ecr:ListImages by its identity policy, and named
    # for ListImages in the repository's policy
    key, name = user_key(
        server,
        {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecr:ListImages", "Resource": "*"},
    )
    repository.set_policy(
        {
            "Sid": "UserMayList",
            "Effect": "Allow",
            "Principal": {"AWS": user_arn(name)},
            "Action": "ecr:ListImages",
        }
    )
    ecr = server.ecr_as(key)

    # when it lists the images, then the identity deny wins
    expect_denied(
        user_arn(name),
        "ecr:ListImages",
        repository.arn,
        IDENTITY_DENY,
        ecr.list_images,
        repositoryName=repository.name,
    )
    # while the allowed rest works
    assert ecr.describe_images(repositoryName=repository.name)["imageDetails"] == []


def test_an_explicit_deny_in_the_registry_policy_beats_everything_for_that_action(
    server: EcrdServer,
) -> None:
    # given an account of the test's own whose registry policy denies CreateRepository
    account = unique_account()
    root = server.ecr_as(create_key(server, account))
    root.put_registry_policy(
        policyText=resource_policy(
            {
                "Sid": "NoNewRepositories",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "ecr:CreateRepository",
            }
        )
    )
    name = unique_name()
    try:
        # when its root creates a repository, then the registry policy's deny wins
        expect_denied(
            f"arn:aws:iam::{account}:root",
            "ecr:CreateRepository",
            repository_arn(name, account),
            RESOURCE_DENY,
            root.create_repository,
            repositoryName=name,
        )
        # and other actions still work
        assert root.describe_repositories()["repositories"] == []
    finally:
        root.delete_registry_policy()

    # when the registry policy is gone, then the root may create it again
    created = root.create_repository(repositoryName=name)["repository"]
    assert created["registryId"] == account
    root.delete_repository(repositoryName=name, force=True)


# Across accounts


def test_another_account_without_a_repository_policy_is_denied_by_the_resource_rule(
    server: EcrdServer, repository: Repository
) -> None:
    # given another account's root and a repository without a policy
    other = server.ecr_as(create_key(server, OTHER_ACCOUNT))

    # when it describes the repository's images, then no resource policy lets it in
    expect_denied(
        f"arn:aws:iam::{OTHER_ACCOUNT}:root",
        "ecr:DescribeImages",
        repository.arn,
        NO_RESOURCE_ALLOW.format(action="ecr:DescribeImages"),
        other.describe_images,
        registryId=ACCOUNT_ID,
        repositoryName=repository.name,
    )


def test_a_repository_policy_for_another_account_lets_its_root_pull_and_not_push(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository with an image and a policy allowing the other account to pull
    digest = push_image(repository.root, repository.name, "v1")
    repository.set_policy(
        {
            "Sid": "OtherAccountPulls",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
            "Action": PULL_ACTIONS,
        }
    )
    other = server.ecr_as(create_key(server, OTHER_ACCOUNT))

    # when the other account's root reads it with registryId, then it may
    described = other.describe_images(registryId=ACCOUNT_ID, repositoryName=repository.name)
    assert [image["imageDigest"] for image in described["imageDetails"]] == [digest]
    images = other.batch_get_image(
        registryId=ACCOUNT_ID, repositoryName=repository.name, imageIds=[{"imageTag": "v1"}]
    )
    assert [image["imageId"]["imageDigest"] for image in images["images"]] == [digest]

    # when it puts an image, then it may not: the policy does not allow pushing
    manifest = images["images"][0]["imageManifest"]
    expect_denied(
        f"arn:aws:iam::{OTHER_ACCOUNT}:root",
        "ecr:PutImage",
        repository.arn,
        NO_RESOURCE_ALLOW.format(action="ecr:PutImage"),
        other.put_image,
        registryId=ACCOUNT_ID,
        repositoryName=repository.name,
        imageManifest=manifest,
        imageTag="pushed-by-other",
    )


def test_a_user_of_the_allowed_account_also_needs_its_own_identity_allow(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository policy allowing the other account to pull
    repository.set_policy(
        {
            "Sid": "OtherAccountPulls",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
            "Action": PULL_ACTIONS,
        }
    )
    bare, bare_name = user_key(server, account=OTHER_ACCOUNT)
    allowed, _ = user_key(
        server,
        {"Effect": "Allow", "Action": "ecr:DescribeImages", "Resource": repository.arn},
        account=OTHER_ACCOUNT,
    )

    # when a user of that account without identity policy reads it, then it is denied
    expect_denied(
        user_arn(bare_name, OTHER_ACCOUNT),
        "ecr:DescribeImages",
        repository.arn,
        NO_IDENTITY_ALLOW.format(action="ecr:DescribeImages"),
        server.ecr_as(bare).describe_images,
        registryId=ACCOUNT_ID,
        repositoryName=repository.name,
    )

    # when a user whose identity policy allows it reads it, then it may
    described = server.ecr_as(allowed).describe_images(
        registryId=ACCOUNT_ID, repositoryName=repository.name
    )
    assert described["imageDetails"] == []


# Policy validation

_BAD_POLICIES = {
    "malformed-json": '{"Version": "2012-10-17", "Statement": [',
    "unknown-element": resource_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "ecr:ListImages", "Colour": "blue"}
    ),
    "bad-effect": resource_policy({"Effect": "Permit", "Principal": "*", "Action": "ecr:*"}),
    "missing-principal": resource_policy({"Effect": "Allow", "Action": "ecr:ListImages"}),
}


@pytest.mark.parametrize("text", _BAD_POLICIES.values(), ids=_BAD_POLICIES.keys())
def test_an_invalid_repository_policy_is_refused_and_not_stored(
    server: EcrdServer, repository: Repository, text: str
) -> None:
    # given a repository with a valid policy
    valid = resource_policy(
        {"Sid": "Keep", "Effect": "Allow", "Principal": "*", "Action": "ecr:ListImages"}
    )
    repository.root.set_repository_policy(repositoryName=repository.name, policyText=valid)

    # when an invalid policy is set, then InvalidParameterException in ECR's words
    message = expect_error(
        INVALID,
        repository.root.set_repository_policy,
        repositoryName=repository.name,
        policyText=text,
    )
    assert message == INVALID_REPOSITORY_POLICY

    # and the previous policy is still the one stored
    stored = repository.root.get_repository_policy(repositoryName=repository.name)
    assert json.loads(stored["policyText"]) == json.loads(valid)


def test_an_invalid_first_repository_policy_leaves_none(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository without a policy; when an invalid one is set, then it is refused
    expect_error(
        INVALID,
        repository.root.set_repository_policy,
        repositoryName=repository.name,
        policyText=_BAD_POLICIES["missing-principal"],
    )

    # and the repository still has no policy
    expect_error(
        "RepositoryPolicyNotFoundException",
        repository.root.get_repository_policy,
        repositoryName=repository.name,
    )


@pytest.mark.parametrize("text", _BAD_POLICIES.values(), ids=_BAD_POLICIES.keys())
def test_an_invalid_registry_policy_is_refused_and_not_stored(
    server: EcrdServer, text: str
) -> None:
    # given an account of the test's own, without a registry policy
    root = server.ecr_as(create_key(server, unique_account()))

    # when an invalid registry policy is put, then InvalidParameterException in ECR's words
    message = expect_error(INVALID, root.put_registry_policy, policyText=text)
    assert message == INVALID_REGISTRY_POLICY

    # and the registry still has no policy
    expect_error("RegistryPolicyNotFoundException", root.get_registry_policy)


def test_keys_create_refuses_an_invalid_identity_policy_and_makes_no_key(
    server: EcrdServer,
) -> None:
    # given an identity policy with a Principal, which identity policies may not have
    name = unique_user()
    path = server.data_dir.parent / f"bad-policy-{name}.json"
    path.write_text(
        json.dumps(
            identity_policy(
                {"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "Resource": "*"}
            )
        )
    )

    # when `ecrd keys create` is given it
    result = subprocess.run(
        [
            sys.executable, "-m", "ecrd", "keys", "create",
            "--user", name, "--policy", str(path), *server.store_arguments(),
        ],
        capture_output=True, text=True, timeout=60, env=clean_environment(),
    )  # fmt: skip

    # then it fails, naming the option, the file and the problem, and prints no key
    assert result.returncode != 0
    assert "--policy" in result.stderr
    assert str(path) in result.stderr
    assert "Principal" in result.stderr
    assert "AccessKeyId" not in result.stdout
    # and no key of that user exists
    listed = subprocess.run(
        [sys.executable, "-m", "ecrd", "keys", "list", *server.store_arguments()],
        capture_output=True, text=True, timeout=60, env=clean_environment(),
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert user_arn(name) not in listed.stdout


# More of IAM's rules


def test_a_repository_policy_naming_the_own_account_leaves_users_to_their_identity(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository policy allowing the own account's root ARN (which IAM reads as "the
    # account", leaving its users to their identity policies), and a user with none
    repository.set_policy(
        {
            "Sid": "OwnAccount",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "ecr:ListImages",
        }
    )
    key, name = user_key(server)

    # when the user lists the images, then it is still denied
    expect_denied(
        user_arn(name),
        "ecr:ListImages",
        repository.arn,
        NO_IDENTITY_ALLOW.format(action="ecr:ListImages"),
        server.ecr_as(key).list_images,
        repositoryName=repository.name,
    )


def test_another_account_cannot_tell_a_missing_repository_from_a_closed_one(
    server: EcrdServer,
) -> None:
    # given another account's root and a repository name that does not exist
    other = server.ecr_as(create_key(server, OTHER_ACCOUNT))
    missing = unique_name("missing")

    # when it describes it, then it is denied as for an existing one, not told it is missing
    expect_denied(
        f"arn:aws:iam::{OTHER_ACCOUNT}:root",
        "ecr:DescribeImages",
        repository_arn(missing),
        NO_RESOURCE_ALLOW.format(action="ecr:DescribeImages"),
        other.describe_images,
        registryId=ACCOUNT_ID,
        repositoryName=missing,
    )


def test_a_bare_account_id_principal_grants_that_account(
    server: EcrdServer, repository: Repository
) -> None:
    # given a repository policy naming the other account by its 12-digit id
    repository.set_policy(
        {
            "Sid": "ById",
            "Effect": "Allow",
            "Principal": {"AWS": OTHER_ACCOUNT},
            "Action": "ecr:ListImages",
        }
    )
    other = server.ecr_as(create_key(server, OTHER_ACCOUNT))

    # when that account's root lists the images, then it may
    listed = other.list_images(registryId=ACCOUNT_ID, repositoryName=repository.name)
    assert listed["imageIds"] == []


def test_action_names_match_case_insensitively(server: EcrdServer, repository: Repository) -> None:
    # given a user allowed "ECR:listimages" (IAM action names are case-insensitive)
    key, _ = user_key(server, {"Effect": "Allow", "Action": "ECR:listimages", "Resource": "*"})

    # when it lists images, then it may
    assert server.ecr_as(key).list_images(repositoryName=repository.name)["imageIds"] == []


def test_condition_key_names_match_case_insensitively(
    server: EcrdServer, repository: Repository
) -> None:
    # given a user allowed ListImages from 127.0.0.0/8, the key written as "AWS:SOURCEIP"
    key, _ = user_key(
        server,
        {
            "Effect": "Allow",
            "Action": "ecr:ListImages",
            "Resource": "*",
            "Condition": {"IpAddress": {"AWS:SOURCEIP": "127.0.0.0/8"}},
        },
    )

    # when it lists images from 127.0.0.1, then it may
    assert server.ecr_as(key).list_images(repositoryName=repository.name)["imageIds"] == []


def test_not_resource_allows_everything_but_the_listed_repositories(server: EcrdServer) -> None:
    # given two repositories and a user allowed ListImages on everything but the first
    closed = Repository(server)
    opened = Repository(server)
    key, name = user_key(
        server, {"Effect": "Allow", "Action": "ecr:ListImages", "NotResource": closed.arn}
    )
    ecr = server.ecr_as(key)
    try:
        # when it lists each, then only the one not listed is allowed
        assert ecr.list_images(repositoryName=opened.name)["imageIds"] == []
        expect_denied(
            user_arn(name),
            "ecr:ListImages",
            closed.arn,
            NO_IDENTITY_ALLOW.format(action="ecr:ListImages"),
            ecr.list_images,
            repositoryName=closed.name,
        )
    finally:
        closed.delete()
        opened.delete()


def test_policy_variables_are_not_substituted_in_a_2008_policy(server: EcrdServer) -> None:
    # given a user whose policy of Version 2008-10-17 names repository/${aws:username}/*:
    # IAM treats "${aws:username}" literally in that version
    name = unique_user()
    policy = {
        "Version": "2008-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecr:CreateRepository",
                "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/${{aws:username}}/*",
            }
        ],
    }
    key = create_key(server, ACCOUNT_ID, user=name, policies=[policy])
    own = f"{name}/app"

    # when it creates a repository under its name, then it may not
    expect_denied(
        user_arn(name),
        "ecr:CreateRepository",
        repository_arn(own),
        NO_IDENTITY_ALLOW.format(action="ecr:CreateRepository"),
        server.ecr_as(key).create_repository,
        repositoryName=own,
    )
