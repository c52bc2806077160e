"""ECR repository operations through boto3 against the real server: CreateRepository,
DescribeRepositories, DeleteRepository, tag mutability, scanning, resource tags and repository
policies, plus the AWS JSON 1.1 protocol as seen on the wire."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.api_errors import error_of, expect_error
from tests.aws.conftest import ACCOUNT_ID, REGION, ecr_client, unvalidated_client
from tests.conftest import EcrdServer

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
OTHER_ACCOUNT = "111111111111"
INVALID = "InvalidParameterException"
NOT_FOUND = "RepositoryNotFoundException"
NO_POLICY = "RepositoryPolicyNotFoundException"
TAG_EXISTS = "ImageTagAlreadyExistsException"
STATEMENT = {"Sid": "AllowPull", "Effect": "Allow", "Action": ["ecr:BatchGetImage"]}
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{**STATEMENT, "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}}],
    }
)


# Helpers


def unique_name(prefix: str = "repos") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def raw_call(server: EcrdServer, operation: str, body: bytes | str) -> httpx.Response:
    """An AWS JSON 1.1 request to `POST /`, signed but with a body of the test's own."""
    return httpx.post(
        f"{server.url}/",
        auth=server.auth(),
        content=body,
        headers={"X-Amz-Target": f"{TARGET_PREFIX}.{operation}", "Content-Type": JSON_CONTENT_TYPE},
        timeout=30,
    )


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def upload_blob(ecr: Any, repository: str, data: bytes) -> dict[str, Any]:
    """Upload `data` through the layer API unless the repository has it (ECR refuses a second
    upload with LayerAlreadyExistsException); return its descriptor without mediaType."""
    descriptor = {"digest": digest_of(data), "size": len(data)}
    checked = ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=[digest_of(data)]
    )
    if checked["layers"]:
        return descriptor
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
    return descriptor


def put_image(ecr: Any, repository: str, tag: str, seed: str) -> str:
    """Put a one-layer OCI image, distinct per `seed`, under `tag`; return its digest."""
    config = upload_blob(ecr, repository, b'{"architecture":"amd64","os":"linux"}')
    layer = upload_blob(ecr, repository, f"layer of {seed}".encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
    )
    ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
    return digest_of(manifest.encode())


def assert_absent(ecr: Any, name: str, **extra: Any) -> None:
    """DescribeRepositories does not know `name`."""
    operation = ecr.describe_repositories
    expect_error(NOT_FOUND, operation, repositoryNames=[name], **extra)


def tagged_digest(ecr: Any, repository: str, tag: str) -> str:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return str(images["images"][0]["imageId"]["imageDigest"])


def wildcard(pattern: str) -> list[dict[str, str]]:
    return [{"filterType": "WILDCARD", "filter": pattern}]


def describe_one(ecr: Any, name: str, **extra: Any) -> dict[str, Any]:
    repositories = ecr.describe_repositories(repositoryNames=[name], **extra)["repositories"]
    assert len(repositories) == 1
    repository: dict[str, Any] = repositories[0]
    return repository


# CreateRepository


def test_create_repository_returns_the_documented_defaults(ecr: Any, server: EcrdServer) -> None:
    # Given a name no repository has
    name = unique_name()
    before = datetime.now(UTC) - timedelta(seconds=5)
    # When it is created with no settings
    repository = ecr.create_repository(repositoryName=name)["repository"]
    # Then ECR fills in the ARN, URI and its defaults
    assert repository["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"
    assert repository["registryId"] == ACCOUNT_ID
    assert repository["repositoryName"] == name
    assert repository["repositoryUri"] == f"{server.host}/{name}"
    assert before <= repository["createdAt"] <= datetime.now(UTC) + timedelta(seconds=5)
    assert repository["imageTagMutability"] == "MUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": False}
    assert repository["encryptionConfiguration"] == {"encryptionType": "AES256"}
    # And DescribeRepositories shows the same repository
    assert describe_one(ecr, name) == repository


def test_create_repository_with_kms_key_keeps_it(ecr: Any) -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0a1b2c3d-0000-4000-8000-000000000001"
    repository = ecr.create_repository(
        repositoryName=unique_name(),
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key},
        imageScanningConfiguration={"scanOnPush": True},
    )["repository"]
    assert repository["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}


def test_create_repository_with_kms_and_no_key_uses_an_account_key(ecr: Any) -> None:
    # ECR documents that the AWS managed key (aws/ecr) of the account is used then, and shows
    # it by its key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not by the alias
    repository = ecr.create_repository(
        repositoryName=unique_name(), encryptionConfiguration={"encryptionType": "KMS"}
    )["repository"]
    encryption = repository["encryptionConfiguration"]
    assert encryption["encryptionType"] == "KMS"
    prefix = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/"
    assert encryption["kmsKey"].startswith(prefix)
    key_id = encryption["kmsKey"].removeprefix(prefix)
    assert str(uuid.UUID(key_id)) == key_id


def test_create_repository_stores_its_tags(ecr: Any) -> None:
    tags = [{"Key": "team", "Value": "platform"}, {"Key": "env", "Value": ""}]
    arn = ecr.create_repository(repositoryName=unique_name(), tags=tags)["repository"][
        "repositoryArn"
    ]
    listed = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted(listed, key=lambda tag: tag["Key"]) == sorted(tags, key=lambda tag: tag["Key"])


def test_create_immutable_with_exclusions_returns_the_filters(ecr: Any) -> None:
    filters = wildcard("latest*")
    name = unique_name()
    repository = ecr.create_repository(
        repositoryName=name,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=filters,
    )["repository"]
    assert repository["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repository["imageTagMutabilityExclusionFilters"] == filters
    assert describe_one(ecr, name)["imageTagMutabilityExclusionFilters"] == filters


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"imageTagMutabilityExclusionFilters": wildcard("x*")}, INVALID),
        ({"encryptionConfiguration": {"encryptionType": "AES256", "kmsKey": "k"}}, INVALID),
        ({"tags": [{"Key": "aws:owner", "Value": "me"}]}, "InvalidTagParameterException"),
        # TagList has no maximum in the model: the server's 50-tag limit answers
        ({"tags": [{"Key": f"k{n}", "Value": "v"} for n in range(51)]}, "TooManyTagsException"),
    ],
    ids=["exclusions-with-mutable", "aes256-with-kms-key", "reserved-tag-key", "51-tags"],
)  # fmt: skip
def test_create_repository_refuses_bad_settings(
    ecr: Any, arguments: dict[str, Any], code: str
) -> None:
    name = unique_name()
    expect_error(code, ecr.create_repository, repositoryName=name, **arguments)
    # And nothing was created
    assert_absent(ecr, name)


def test_create_repository_twice_is_refused(ecr: Any, new_repository: str) -> None:
    expect_error(
        "RepositoryAlreadyExistsException", ecr.create_repository, repositoryName=new_repository
    )


# Bad input


@pytest.mark.parametrize(
    ("operation", "arguments", "member"),
    [
        ("create_repository", {}, "repositoryName"),
        ("create_repository", {"repositoryName": "a"}, "repositoryName"),
        ("create_repository", {"repositoryName": "a" * 257}, "repositoryName"),
        ("create_repository", {"repositoryName": "Upper/Case"}, "repositoryName"),
        ("create_repository", {"repositoryName": "has space"}, "repositoryName"),
        ("create_repository", {"repositoryName": "/leading"}, "repositoryName"),
        (
            "create_repository",
            {"repositoryName": "fine", "imageTagMutability": "SOMETIMES"},
            "imageTagMutability",
        ),
        ("describe_repositories", {"repositoryNames": ["a"]}, "repositoryNames"),
        ("describe_repositories", {"repositoryNames": ["Upper"]}, "repositoryNames"),
        ("describe_repositories", {"repositoryNames": ["/leading"]}, "repositoryNames"),
        ("describe_repositories", {"maxResults": 0}, "maxResults"),
        ("describe_repositories", {"maxResults": 1001}, "maxResults"),
    ],
)
def test_input_breaking_the_model_is_an_invalid_parameter(
    server: EcrdServer, operation: str, arguments: dict[str, Any], member: str
) -> None:
    client = unvalidated_client(server)
    message = expect_error(INVALID, getattr(client, operation), **arguments)
    assert member in message


def test_member_of_the_wrong_json_type_is_an_invalid_parameter(server: EcrdServer) -> None:
    response = raw_call(server, "CreateRepository", '{"repositoryName": 5}')
    assert response.status_code == 400
    assert response.json()["__type"] == "InvalidParameterException"
    assert "repositoryName" in response.json()["message"]


# The wire protocol


@pytest.mark.parametrize(
    ("operation", "body", "code"),
    [
        ("MakeCoffee", "{}", "UnknownOperationException"),
        ("DescribeRepositories", '{"repositoryNames": [', "SerializationException"),
    ],
)
def test_protocol_errors(server: EcrdServer, operation: str, body: str, code: str) -> None:
    response = raw_call(server, operation, body)
    assert response.status_code == 400
    assert response.json()["__type"] == code
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.headers["x-amzn-RequestId"]


def test_responses_carry_request_id_content_type_and_epoch_timestamps(server: EcrdServer) -> None:
    # Given a success and an error
    name = unique_name()
    created = raw_call(server, "CreateRepository", json.dumps({"repositoryName": name}))
    described = raw_call(server, "DescribeRepositories", json.dumps({"repositoryNames": [name]}))
    missing = raw_call(
        server, "DescribeRepositories", json.dumps({"repositoryNames": [unique_name()]})
    )
    # Then every response has a request id and the AWS JSON 1.1 content type
    for response in (created, described, missing):
        assert response.headers["x-amzn-RequestId"]
        assert response.headers["content-type"].startswith(JSON_CONTENT_TYPE)
    assert created.status_code == described.status_code == 200
    # And the error names its type in the body and the header alike
    assert missing.status_code == 400
    assert missing.headers["x-amzn-ErrorType"] == missing.json()["__type"]
    assert missing.json()["__type"] == "RepositoryNotFoundException"
    # And timestamps are epoch seconds, JSON numbers
    for created_at in (
        created.json()["repository"]["createdAt"],
        described.json()["repositories"][0]["createdAt"],
    ):
        assert isinstance(created_at, int | float) and not isinstance(created_at, bool)
        assert abs(created_at - datetime.now(UTC).timestamp()) < 60


def test_operation_not_implemented_is_a_modeled_client_error(server: EcrdServer) -> None:
    # Every ECR operation is implemented; Secrets Manager's rotation is not yet.
    secrets = server.ecr("secretsmanager")
    with pytest.raises(ClientError) as refused:
        secrets.cancel_rotate_secret(SecretId="not-implemented")
    code, message = error_of(refused)
    status = refused.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500
    operation = secrets.meta.service_model.operation_model("CancelRotateSecret")
    modeled = {shape.name for shape in operation.error_shapes}
    assert code in modeled
    assert "not support" in message.lower()


# DescribeRepositories


def test_describe_repositories_by_names(ecr: Any) -> None:
    names = [unique_name(), unique_name()]
    for name in names:
        ecr.create_repository(repositoryName=name)
    described = ecr.describe_repositories(repositoryNames=names)["repositories"]
    assert sorted(repository["repositoryName"] for repository in described) == sorted(names)


def test_describe_a_missing_repository_names_it(ecr: Any, new_repository: str) -> None:
    missing = unique_name()
    message = expect_error(
        NOT_FOUND,
        ecr.describe_repositories,
        repositoryNames=[new_repository, missing],
    )
    assert message == (
        f"The repository with name '{missing}' does not exist in the registry with id "
        f"'{ACCOUNT_ID}'"
    )


def test_describe_repositories_pages_through_every_repository_once(
    own_server: EcrdServer,
) -> None:
    # Given a fresh registry with seven repositories
    ecr = ecr_client(own_server)
    names = sorted(f"page/repo-{number}" for number in range(7))
    for name in names:
        ecr.create_repository(repositoryName=name)
    # When they are listed three at a time
    pages = [ecr.describe_repositories(maxResults=3)]
    while "nextToken" in pages[-1]:
        pages.append(ecr.describe_repositories(maxResults=3, nextToken=pages[-1]["nextToken"]))
    # Then every repository comes exactly once, over three pages
    seen = [repository["repositoryName"] for page in pages for repository in page["repositories"]]
    assert sorted(seen) == names
    assert all(len(page["repositories"]) <= 3 for page in pages)
    # And boto3's paginator sees the same
    paginator = ecr.get_paginator("describe_repositories")
    paged = [
        repository["repositoryName"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 3})
        for repository in page["repositories"]
    ]
    assert sorted(paged) == names


def test_describe_by_names_refuses_max_results(ecr: Any, new_repository: str) -> None:
    expect_error(
        INVALID,
        ecr.describe_repositories,
        repositoryNames=[new_repository],
        maxResults=5,
    )


def test_describe_refuses_a_garbage_next_token(ecr: Any) -> None:
    expect_error(INVALID, ecr.describe_repositories, nextToken="not-a-token!!")


# Regions and accounts


def test_repositories_are_per_region(server: EcrdServer, ecr: Any) -> None:
    # Given a repository in eu-west-1 and one in us-east-1
    europe = ecr_client(server, region="eu-west-1")
    european, american = unique_name(), unique_name()
    created = europe.create_repository(repositoryName=european)["repository"]
    ecr.create_repository(repositoryName=american)
    # Then the ARN carries the region
    assert created["repositoryArn"] == f"arn:aws:ecr:eu-west-1:{ACCOUNT_ID}:repository/{european}"
    # And neither region sees the other's repository
    for client, name in ((ecr, european), (europe, american)):
        assert_absent(client, name)
    assert describe_one(europe, european)["repositoryArn"] == created["repositoryArn"]


def test_registry_id_addresses_another_accounts_registry(server: EcrdServer, ecr: Any) -> None:
    # Given a repository the other account's root created in its own registry
    other = server.ecr_as(server.create_key(OTHER_ACCOUNT))
    name = unique_name()
    created = other.create_repository(registryId=OTHER_ACCOUNT, repositoryName=name)["repository"]
    assert created["registryId"] == OTHER_ACCOUNT
    assert created["repositoryArn"] == f"arn:aws:ecr:{REGION}:{OTHER_ACCOUNT}:repository/{name}"
    # Then it is found there and not in the default registry
    assert describe_one(other, name, registryId=OTHER_ACCOUNT)["repositoryName"] == name
    assert_absent(ecr, name)
    # and the default account may not look into it without a repository policy
    expect_error(
        "AccessDeniedException",
        ecr.describe_repositories,
        registryId=OTHER_ACCOUNT,
        repositoryNames=[name],
    )


# DeleteRepository


def test_delete_empty_repository_returns_it_and_it_is_gone(ecr: Any) -> None:
    name = unique_name()
    created = ecr.create_repository(repositoryName=name)["repository"]
    deleted = ecr.delete_repository(repositoryName=name)["repository"]
    assert deleted["repositoryArn"] == created["repositoryArn"]
    assert deleted["repositoryName"] == name
    assert deleted["registryId"] == ACCOUNT_ID
    assert_absent(ecr, name)


def test_delete_repository_with_images_needs_force(ecr: Any, new_repository: str) -> None:
    # Given a repository holding an image
    put_image(ecr, new_repository, "v1", "delete")
    # When it is deleted without force, then it is refused and stays
    expect_error(
        "RepositoryNotEmptyException", ecr.delete_repository, repositoryName=new_repository
    )
    assert describe_one(ecr, new_repository)["repositoryName"] == new_repository
    # When it is deleted with force, then it is gone
    deleted = ecr.delete_repository(repositoryName=new_repository, force=True)["repository"]
    assert deleted["repositoryName"] == new_repository
    assert_absent(ecr, new_repository)


# Tag mutability and scanning


def test_put_image_tag_mutability_returns_and_persists_the_setting(
    ecr: Any, new_repository: str
) -> None:
    filters = wildcard("dev-*")
    answered = ecr.put_image_tag_mutability(
        repositoryName=new_repository,
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=filters,
    )
    answered.pop("ResponseMetadata")
    assert answered == {
        "registryId": ACCOUNT_ID,
        "repositoryName": new_repository,
        "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": filters,
    }
    described = describe_one(ecr, new_repository)
    assert described["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert described["imageTagMutabilityExclusionFilters"] == filters


def test_immutable_tag_cannot_move(ecr: Any, new_repository: str) -> None:
    # Given a tag pushed, then the repository made immutable
    first = put_image(ecr, new_repository, "v1", "first")
    answered = ecr.put_image_tag_mutability(
        repositoryName=new_repository, imageTagMutability="IMMUTABLE"
    )
    assert answered["imageTagMutability"] == "IMMUTABLE"
    # When another manifest is put under that tag, then it is refused
    expect_error(TAG_EXISTS, put_image, ecr, new_repository, "v1", "second")
    assert tagged_digest(ecr, new_repository, "v1") == first
    # And a new tag is still accepted
    put_image(ecr, new_repository, "v2", "second")


def test_immutable_with_exclusion_lets_matching_tags_move(ecr: Any, new_repository: str) -> None:
    # Given an immutable repository that excludes latest*
    ecr.put_image_tag_mutability(
        repositoryName=new_repository,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=wildcard("latest*"),
    )
    put_image(ecr, new_repository, "latest", "one")
    put_image(ecr, new_repository, "v1", "one")
    # Then latest moves to another image
    second = put_image(ecr, new_repository, "latest", "two")
    assert tagged_digest(ecr, new_repository, "latest") == second
    # And v1 cannot
    expect_error(TAG_EXISTS, put_image, ecr, new_repository, "v1", "two")


def test_mutable_with_exclusion_freezes_only_matching_tags(ecr: Any, new_repository: str) -> None:
    # Given a mutable repository whose release-* tags are immutable
    ecr.put_image_tag_mutability(
        repositoryName=new_repository,
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=wildcard("release-*"),
    )
    put_image(ecr, new_repository, "release-1", "one")
    put_image(ecr, new_repository, "edge", "one")
    # Then edge moves and release-1 cannot
    second = put_image(ecr, new_repository, "edge", "two")
    assert tagged_digest(ecr, new_repository, "edge") == second
    expect_error(TAG_EXISTS, put_image, ecr, new_repository, "release-1", "two")


def test_put_image_scanning_configuration_returns_and_persists(
    ecr: Any, new_repository: str
) -> None:
    answered = ecr.put_image_scanning_configuration(
        repositoryName=new_repository, imageScanningConfiguration={"scanOnPush": True}
    )
    assert answered["registryId"] == ACCOUNT_ID
    assert answered["repositoryName"] == new_repository
    assert answered["imageScanningConfiguration"] == {"scanOnPush": True}
    described = describe_one(ecr, new_repository)
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}


# Resource tags


def test_tag_untag_and_list_by_arn(ecr: Any, new_repository: str) -> None:
    arn = describe_one(ecr, new_repository)["repositoryArn"]
    # When tags are added, then they are listed
    ecr.tag_resource(
        resourceArn=arn, tags=[{"Key": "team", "Value": "a"}, {"Key": "cost", "Value": "1"}]
    )
    # When a key is tagged again, then its value is overwritten
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "b"}])
    listed = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted(listed, key=lambda tag: tag["Key"]) == [
        {"Key": "cost", "Value": "1"},
        {"Key": "team", "Value": "b"},
    ]
    # When a key is removed, then only the other remains
    ecr.untag_resource(resourceArn=arn, tagKeys=["cost"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "b"}]


def test_tag_resource_refuses_reserved_keys(ecr: Any, new_repository: str) -> None:
    arn = describe_one(ecr, new_repository)["repositoryArn"]
    expect_error(
        "InvalidTagParameterException",
        ecr.tag_resource,
        resourceArn=arn,
        tags=[{"Key": "aws:created", "Value": "x"}],
    )


@pytest.mark.parametrize(
    ("operation", "arguments"),
    [
        ("list_tags_for_resource", {"resourceArn": "not-an-arn"}),
        ("tag_resource", {"resourceArn": "arn:aws:s3:::bucket", "tags": []}),
        ("untag_resource", {"resourceArn": "not-an-arn", "tagKeys": ["k"]}),
    ],
)
def test_tags_with_a_malformed_arn_are_an_invalid_parameter(
    ecr: Any, operation: str, arguments: dict[str, Any]
) -> None:
    expect_error(INVALID, getattr(ecr, operation), **arguments)


def test_tags_of_a_missing_repository(ecr: Any) -> None:
    arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{unique_name()}"
    expect_error(NOT_FOUND, ecr.list_tags_for_resource, resourceArn=arn)
    expect_error(
        NOT_FOUND,
        ecr.tag_resource,
        resourceArn=arn,
        tags=[{"Key": "k", "Value": "v"}],
    )


# Repository policies


def test_repository_policy_lifecycle(ecr: Any, new_repository: str) -> None:
    # Given a repository without a policy
    expect_error(NO_POLICY, ecr.get_repository_policy, repositoryName=new_repository)
    # When a policy is set, then Set and Get answer it
    set_answer = ecr.set_repository_policy(repositoryName=new_repository, policyText=POLICY)
    got = ecr.get_repository_policy(repositoryName=new_repository)
    # When it is deleted, then Delete answers the deleted policy and none is left
    deleted = ecr.delete_repository_policy(repositoryName=new_repository)
    for answer in (set_answer, got, deleted):
        assert answer["registryId"] == ACCOUNT_ID
        assert answer["repositoryName"] == new_repository
        assert json.loads(answer["policyText"]) == json.loads(POLICY)
    expect_error(NO_POLICY, ecr.get_repository_policy, repositoryName=new_repository)
    expect_error(NO_POLICY, ecr.delete_repository_policy, repositoryName=new_repository)


@pytest.mark.parametrize(
    "policy_text",
    [
        '{"Version": "2012-10-17", "Statement": [',
        json.dumps({**json.loads(POLICY), "Unknown": "element"}),
        json.dumps({"Statement": [{"Principal": "*", "Action": ["ecr:BatchGetImage"]}]}),
    ],
    ids=["invalid-json", "unknown-element", "missing-effect"],
)
def test_malformed_repository_policy_is_refused(
    ecr: Any, new_repository: str, policy_text: str
) -> None:
    set_policy = ecr.set_repository_policy
    expect_error(INVALID, set_policy, repositoryName=new_repository, policyText=policy_text)
    # And nothing was stored
    expect_error(NO_POLICY, ecr.get_repository_policy, repositoryName=new_repository)


@pytest.mark.parametrize(
    ("operation", "arguments"),
    [
        ("delete_repository", {}),
        ("put_image_tag_mutability", {"imageTagMutability": "IMMUTABLE"}),
        ("put_image_scanning_configuration", {"imageScanningConfiguration": {"scanOnPush": True}}),
        ("set_repository_policy", {"policyText": POLICY}),
        ("get_repository_policy", {}),
        ("delete_repository_policy", {}),
    ],
)
def test_operations_on_a_missing_repository(
    ecr: Any, operation: str, arguments: dict[str, Any]
) -> None:
    name = unique_name()
    message = expect_error(NOT_FOUND, getattr(ecr, operation), repositoryName=name, **arguments)
    assert f"'{name}'" in message
