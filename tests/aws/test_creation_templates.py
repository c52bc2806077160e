"""Repository creation templates through boto3, and what a push to a missing repository makes
of them: with create_on_push off (ECR's behaviour) only names a CREATE_ON_PUSH template covers
are created, with its settings and policies; the longest prefix wins, ROOT is the fallback."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT_ID, ecr_client
from tests.aws.images_helpers import error_code
from tests.conftest import EcrdServer

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "pull",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": ["ecr:BatchGetImage"],
            }
        ],
    }
)
LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep ten",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 10,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server that creates repositories on push only as ECR does (by template)."""
    instance = EcrdServer(
        tmp_path_factory.mktemp("templates") / "data",
        environment={"ECRD_CREATE_ON_PUSH": "false"},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(strict: EcrdServer) -> Any:
    return ecr_client(strict)


@pytest.fixture
def space() -> str:
    """A namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


def push_blob(server: EcrdServer, repository: str, data: bytes) -> int:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with server.http() as http:
        answer = http.post(f"/v2/{repository}/blobs/uploads/?digest={digest}", content=data)
    return answer.status_code


def test_a_template_is_created_described_updated_and_deleted(ecr: Any, space: str) -> None:
    created = ecr.create_repository_creation_template(
        prefix=space,
        description="the team's",
        appliedFor=["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        resourceTags=[{"Key": "team", "Value": "blue"}],
        repositoryPolicy=POLICY,
        lifecyclePolicy=LIFECYCLE,
        encryptionConfiguration={
            "encryptionType": "KMS",
            "kmsKey": "arn:aws:kms:us-east-1:000000000000:key/k1",
        },
    )
    template = created["repositoryCreationTemplate"]
    assert created["registryId"] == ACCOUNT_ID
    assert template["prefix"] == space
    assert template["appliedFor"] == ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"]
    assert template["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "latest"}
    ]
    assert template["encryptionConfiguration"] == {
        "encryptionType": "KMS",
        "kmsKey": "arn:aws:kms:us-east-1:000000000000:key/k1",
    }
    assert json.loads(template["repositoryPolicy"]) == json.loads(POLICY)
    assert template["createdAt"] == template["updatedAt"]
    # an update changes what it names and keeps the rest
    updated = ecr.update_repository_creation_template(prefix=space, description="renamed")
    assert updated["repositoryCreationTemplate"]["description"] == "renamed"
    assert updated["repositoryCreationTemplate"]["resourceTags"] == [
        {"Key": "team", "Value": "blue"}
    ]
    described = ecr.describe_repository_creation_templates(prefixes=[space])
    assert [t["prefix"] for t in described["repositoryCreationTemplates"]] == [space]
    assert described["repositoryCreationTemplates"][0]["description"] == "renamed"
    deleted = ecr.delete_repository_creation_template(prefix=space)
    assert deleted["repositoryCreationTemplate"]["prefix"] == space
    assert (
        ecr.describe_repository_creation_templates(prefixes=[space])["repositoryCreationTemplates"]
        == []
    )


def test_template_errors_are_ecrs(ecr: Any, space: str) -> None:
    ecr.create_repository_creation_template(prefix=space, appliedFor=["CREATE_ON_PUSH"])
    with pytest.raises(ClientError) as raised:
        ecr.create_repository_creation_template(prefix=space, appliedFor=["REPLICATION"])
    assert error_code(raised) == "TemplateAlreadyExistsException"
    missing = f"{space}-none"
    calls: list[tuple[Any, dict[str, str]]] = [
        (ecr.update_repository_creation_template, {"prefix": missing, "description": "x"}),
        (ecr.delete_repository_creation_template, {"prefix": missing}),
    ]
    for operation, named in calls:
        with pytest.raises(ClientError) as raised:
            operation(**named)
        assert error_code(raised) == "TemplateNotFoundException"
        assert f"prefix '{missing}' does not exist" in str(raised.value)
    bad: dict[str, Any] = {
        "repositoryPolicy": '{"Statement": "nope"}',
        "lifecyclePolicy": '{"rules": []}',
        "appliedFor": [],
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "resourceTags": [{"Key": "aws:reserved", "Value": "x"}],
    }
    for member, value in bad.items():
        arguments: dict[str, Any] = {"prefix": f"{space}/bad", "appliedFor": ["CREATE_ON_PUSH"]}
        arguments[member] = value
        with pytest.raises(ClientError) as raised:
            ecr.create_repository_creation_template(**arguments)
        assert error_code(raised) == "InvalidParameterException", member
    with pytest.raises(ClientError) as raised:
        ecr.create_repository_creation_template(
            prefix=f"{space}/bad", appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy='{"rules": []}'
        )
    assert "Lifecycle policy validation failure" in str(raised.value)
    # nothing was stored by the refused ones
    listed = ecr.describe_repository_creation_templates(prefixes=[f"{space}/bad"])
    assert listed["repositoryCreationTemplates"] == []


def test_templates_are_listed_in_pages(ecr: Any, space: str) -> None:
    prefixes = [f"{space}/p{number}" for number in range(5)]
    for prefix in prefixes:
        ecr.create_repository_creation_template(prefix=prefix, appliedFor=["CREATE_ON_PUSH"])
    pages = ecr.get_paginator("describe_repository_creation_templates").paginate(
        prefixes=prefixes, PaginationConfig={"PageSize": 2}
    )
    seen = [[t["prefix"] for t in page["repositoryCreationTemplates"]] for page in pages]
    assert seen == [prefixes[0:2], prefixes[2:4], prefixes[4:5]]


def test_a_push_creates_a_repository_only_where_a_template_covers_it(
    strict: EcrdServer, ecr: Any, space: str
) -> None:
    # with create_on_push off, a push to a name no template covers finds no repository
    assert push_blob(strict, f"{space}/app", b"layer") == 404
    ecr.create_repository_creation_template(
        prefix=space,
        appliedFor=["CREATE_ON_PUSH"],
        imageTagMutability="IMMUTABLE",
        resourceTags=[{"Key": "team", "Value": "blue"}],
        repositoryPolicy=POLICY,
        lifecyclePolicy=LIFECYCLE,
    )
    ecr.create_repository_creation_template(
        prefix=f"{space}/special/",
        appliedFor=["CREATE_ON_PUSH"],
        resourceTags=[{"Key": "team", "Value": "special"}],
    )
    ecr.create_repository_creation_template(prefix=f"{space}/cache", appliedFor=["REPLICATION"])
    # a template covers the names under its namespace: the push creates the repository
    assert push_blob(strict, f"{space}/app", b"layer") == 201
    (repository,) = ecr.describe_repositories(repositoryNames=[f"{space}/app"])["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    tags = ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "blue"}]
    policy = ecr.get_repository_policy(repositoryName=f"{space}/app")["policyText"]
    assert json.loads(policy) == json.loads(POLICY)
    lifecycle = ecr.get_lifecycle_policy(repositoryName=f"{space}/app")["lifecyclePolicyText"]
    assert json.loads(lifecycle) == json.loads(LIFECYCLE)
    # the longest prefix wins
    assert push_blob(strict, f"{space}/special/app", b"layer") == 201
    special = ecr.describe_repositories(repositoryNames=[f"{space}/special/app"])
    arn = special["repositories"][0]["repositoryArn"]
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"Key": "team", "Value": "special"}
    ]
    assert special["repositories"][0]["imageTagMutability"] == "MUTABLE"
    # a template for another purpose does not apply to pushes: its namespace is the parent's
    assert push_blob(strict, f"{space}/cache/app", b"layer") == 201
    cache = ecr.describe_repositories(repositoryNames=[f"{space}/cache/app"])
    assert cache["repositories"][0]["imageTagMutability"] == "IMMUTABLE"
    # the namespace itself is not under its own prefix
    assert push_blob(strict, space, b"layer") == 404


def test_root_covers_every_name_and_the_default_server_creates_without_templates(
    tmp_path: Path,
) -> None:
    server = EcrdServer(tmp_path / "data", environment={"ECRD_CREATE_ON_PUSH": "false"})
    server.start()
    try:
        ecr = ecr_client(server)
        assert push_blob(server, "anything/here", b"x") == 404
        ecr.create_repository_creation_template(
            prefix="ROOT", appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE"
        )
        assert push_blob(server, "anything/here", b"x") == 201
        (repository,) = ecr.describe_repositories(repositoryNames=["anything/here"])["repositories"]
        assert repository["imageTagMutability"] == "IMMUTABLE"
    finally:
        server.stop()
    # and ecrd's default (create_on_push on) creates with ECR's defaults, no template needed
    default = EcrdServer(tmp_path / "default")
    default.start()
    try:
        assert push_blob(default, "fresh/repository", b"x") == 201
        described = ecr_client(default).describe_repositories(repositoryNames=["fresh/repository"])
        assert described["repositories"][0]["imageTagMutability"] == "MUTABLE"
    finally:
        default.stop()
