"""Bad input for every implemented ECR operation, over the wire: each required member missing,
and each top-level string member too long, breaking its pattern, or of the wrong JSON type.
Limits come from the botocore model; the answers must name the member and store nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from ecrd.aws.ecr import OPERATIONS
from ecrd.aws.model import load_services
from ecrd.aws.secretsmanager import OPERATIONS as SECRETS_MANAGER_OPERATIONS

ECR = load_services()["AmazonEC2ContainerRegistry_V20150921"]
DIGEST = "sha256:" + "a" * 64
# A valid request for each implemented operation (values need not exist: every case below
# must be refused before anything is looked up).
VALID: dict[str, dict[str, Any]] = {
    "CreateRepository": {"repositoryName": "bad-input/never"},
    "DescribeRepositories": {"repositoryNames": ["bad-input/never"]},
    "DeleteRepository": {"repositoryName": "bad-input/never"},
    "PutImageTagMutability": {"repositoryName": "bad-input/never", "imageTagMutability": "MUTABLE"},
    "PutImageScanningConfiguration": {
        "repositoryName": "bad-input/never",
        "imageScanningConfiguration": {"scanOnPush": True},
    },
    "TagResource": {
        "resourceArn": "arn:aws:ecr:us-east-1:000000000000:repository/bad-input/never",
        "tags": [{"Key": "k", "Value": "v"}],
    },
    "UntagResource": {
        "resourceArn": "arn:aws:ecr:us-east-1:000000000000:repository/bad-input/never",
        "tagKeys": ["k"],
    },
    "ListTagsForResource": {
        "resourceArn": "arn:aws:ecr:us-east-1:000000000000:repository/bad-input/never"
    },
    "GetRepositoryPolicy": {"repositoryName": "bad-input/never"},
    "SetRepositoryPolicy": {"repositoryName": "bad-input/never", "policyText": "{}"},
    "DeleteRepositoryPolicy": {"repositoryName": "bad-input/never"},
    "PutImage": {"repositoryName": "bad-input/never", "imageManifest": "{}", "imageTag": "v1"},
    "BatchGetImage": {"repositoryName": "bad-input/never", "imageIds": [{"imageTag": "v1"}]},
    "BatchDeleteImage": {"repositoryName": "bad-input/never", "imageIds": [{"imageTag": "v1"}]},
    "DescribeImages": {"repositoryName": "bad-input/never"},
    "ListImages": {"repositoryName": "bad-input/never"},
    "ListImageReferrers": {
        "repositoryName": "bad-input/never",
        "subjectId": {"imageDigest": DIGEST},
    },
    "BatchCheckLayerAvailability": {"repositoryName": "bad-input/never", "layerDigests": [DIGEST]},
    "InitiateLayerUpload": {"repositoryName": "bad-input/never"},
    "UploadLayerPart": {
        "repositoryName": "bad-input/never",
        "uploadId": "00000000-0000-0000-0000-000000000000",
        "partFirstByte": 0,
        "partLastByte": 0,
        "layerPartBlob": base64.b64encode(b"x").decode(),
    },
    "CompleteLayerUpload": {
        "repositoryName": "bad-input/never",
        "uploadId": "00000000-0000-0000-0000-000000000000",
        "layerDigests": [DIGEST],
    },
    "GetDownloadUrlForLayer": {"repositoryName": "bad-input/never", "layerDigest": DIGEST},
    "GetAuthorizationToken": {},
    "DescribeRegistry": {},
    "GetRegistryPolicy": {},
    "PutRegistryPolicy": {"policyText": "{}"},
    "DeleteRegistryPolicy": {},
    "BatchGetRepositoryScanningConfiguration": {"repositoryNames": ["bad-input/never"]},
    "UpdateImageStorageClass": {
        "repositoryName": "bad-input/never",
        "imageId": {"imageTag": "v1"},
        "targetStorageClass": "ARCHIVE",
    },
    "RegisterPullTimeUpdateExclusion": {
        "principalArn": "arn:aws:iam::000000000000:user/bad-input-never"
    },
    "DeregisterPullTimeUpdateExclusion": {
        "principalArn": "arn:aws:iam::000000000000:user/bad-input-never"
    },
    "ListPullTimeUpdateExclusions": {},
    "PutLifecyclePolicy": {
        "repositoryName": "bad-input/never",
        "lifecyclePolicyText": '{"rules": []}' + " " * 90,
    },
    "GetLifecyclePolicy": {"repositoryName": "bad-input/never"},
    "DeleteLifecyclePolicy": {"repositoryName": "bad-input/never"},
    "StartLifecyclePolicyPreview": {"repositoryName": "bad-input/never"},
    "GetLifecyclePolicyPreview": {"repositoryName": "bad-input/never"},
    "CreateRepositoryCreationTemplate": {
        "prefix": "bad-input/never",
        "appliedFor": ["CREATE_ON_PUSH"],
    },
    "DescribeRepositoryCreationTemplates": {},
    "UpdateRepositoryCreationTemplate": {"prefix": "bad-input/never"},
    "DeleteRepositoryCreationTemplate": {"prefix": "bad-input/never"},
    "CreatePullThroughCacheRule": {
        "ecrRepositoryPrefix": "bad-input",
        "upstreamRegistryUrl": "registry.example.com",
    },
    "DescribePullThroughCacheRules": {},
    "UpdatePullThroughCacheRule": {"ecrRepositoryPrefix": "bad-input"},
    "DeletePullThroughCacheRule": {"ecrRepositoryPrefix": "bad-input"},
    "ValidatePullThroughCacheRule": {"ecrRepositoryPrefix": "bad-input"},
    "GetAccountSetting": {"name": "BLOB_MOUNTING"},
    "PutAccountSetting": {"name": "BASIC_SCAN_TYPE_VERSION", "value": "AWS_NATIVE"},
    "PutReplicationConfiguration": {"replicationConfiguration": {"rules": []}},
    "DescribeImageReplicationStatus": {
        "repositoryName": "bad-input",
        "imageId": {"imageTag": "latest"},
    },
    "StartReplicationBackfill": {"destination": {"region": "eu-west-1", "registryId": "1" * 12}},
    "StopReplicationBackfill": {"replicationBackfillId": "00000000-0000-4000-8000-000000000000"},
    "DescribeReplicationBackfillResults": {
        "replicationBackfillId": "00000000-0000-4000-8000-000000000000"
    },
    "ListReplicationBackfills": {},
    "PutRegistryScanningConfiguration": {"scanType": "BASIC", "rules": []},
    "GetRegistryScanningConfiguration": {},
    "PutSigningConfiguration": {"signingConfiguration": {"rules": []}},
    "GetSigningConfiguration": {},
    "DeleteSigningConfiguration": {},
    "StartImageScan": {"repositoryName": "bad-input", "imageId": {"imageTag": "latest"}},
    "DescribeImageScanFindings": {
        "repositoryName": "bad-input",
        "imageId": {"imageTag": "latest"},
    },
    "DescribeImageSigningStatus": {
        "repositoryName": "bad-input",
        "imageId": {"imageTag": "latest"},
    },
}


SECRETS_MANAGER = load_services()["secretsmanager"]
SECRET = "bad-input/never"
SECRETS_VALID: dict[str, dict[str, Any]] = {
    "CreateSecret": {"Name": SECRET, "SecretString": "v"},
    "DescribeSecret": {"SecretId": SECRET},
    "GetSecretValue": {"SecretId": SECRET},
    "PutSecretValue": {"SecretId": SECRET, "SecretString": "v"},
    "UpdateSecret": {"SecretId": SECRET, "Description": "d"},
    "DeleteSecret": {"SecretId": SECRET},
    "RestoreSecret": {"SecretId": SECRET},
    "TagResource": {"SecretId": SECRET, "Tags": [{"Key": "k", "Value": "v"}]},
    "UntagResource": {"SecretId": SECRET, "TagKeys": ["k"]},
    "GetResourcePolicy": {"SecretId": SECRET},
    "ListSecrets": {},
}


def cases(
    service: Any = ECR,
    operations: Any = OPERATIONS,
    valid_requests: dict[str, dict[str, Any]] = VALID,
) -> list[tuple[str, str, str, Any]]:
    """(operation, member, kind of fault, request) for every fault the model lets us make."""
    found = []
    for operation in sorted(operations):
        shape = service.model.operation_model(operation).input_shape
        if shape is None:
            continue
        valid = valid_requests[operation]
        for member in shape.required_members:
            request = {k: v for k, v in valid.items() if k != member}
            found.append((operation, member, "missing", request))
        for member, member_shape in shape.members.items():
            if member_shape.type_name != "string":
                continue
            maximum = member_shape.metadata.get("max")
            if maximum is not None and maximum <= 100_000:
                found.append(
                    (operation, member, "too long", {**valid, member: "a" * (maximum + 1)})
                )
            if member_shape.metadata.get("pattern") or member_shape.metadata.get("enum"):
                found.append((operation, member, "pattern", {**valid, member: "!! not valid !!"}))
            found.append((operation, member, "wrong type", {**valid, member: 12345}))
    return found


def test_every_implemented_operation_has_a_valid_request_here() -> None:
    assert set(VALID) == set(OPERATIONS)
    assert set(SECRETS_VALID) == set(SECRETS_MANAGER_OPERATIONS)


@pytest.mark.parametrize(
    ("operation", "member", "fault", "request_body"),
    cases(SECRETS_MANAGER, SECRETS_MANAGER_OPERATIONS, SECRETS_VALID),
)
def test_bad_secrets_manager_member_is_refused_naming_it(
    client: httpx.Client, operation: str, member: str, fault: str, request_body: Any
) -> None:
    # Given a Secrets Manager request with one bad member, when it is sent
    response = client.post(
        "/",
        content=json.dumps(request_body),
        headers={
            "X-Amz-Target": f"{SECRETS_MANAGER.target_prefix}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    # Then it is refused with the operation's parameter error, naming the member and never
    # quoting a value (a SecretString among them)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["__type"] == "InvalidParameterException"
    assert member in body["message"]
    assert "aaaaaaaa" not in body["message"]


@pytest.mark.parametrize(("operation", "member", "fault", "request_body"), cases())
def test_bad_member_is_refused_naming_it(
    client: httpx.Client, operation: str, member: str, fault: str, request_body: Any
) -> None:
    # Given a request with one bad member, when it is sent
    response = client.post(
        "/",
        content=json.dumps(request_body),
        headers={
            "X-Amz-Target": f"{ECR.target_prefix}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    # Then it is refused with the operation's parameter error, naming the member
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["__type"] in ("InvalidParameterException", "ValidationException")
    assert member in body["message"]


def test_refused_create_leaves_no_repository(client: httpx.Client) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    target = f"{ECR.target_prefix}.CreateRepository"
    bad = {"repositoryName": "bad-input/never", "imageTagMutability": "SOMETIMES"}
    refused = client.post("/", content=json.dumps(bad), headers={**headers, "X-Amz-Target": target})
    assert refused.status_code == 400
    described = client.post(
        "/",
        content=json.dumps({"repositoryNames": ["bad-input/never"]}),
        headers={**headers, "X-Amz-Target": f"{ECR.target_prefix}.DescribeRepositories"},
    )
    assert described.json()["__type"] == "RepositoryNotFoundException"
