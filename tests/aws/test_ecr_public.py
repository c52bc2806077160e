"""ECR Public (botocore service `ecr-public`) through boto3 against the real server: every one
of the 23 operations and the errors the ECR Public API reference documents for them."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecrd.metadata.registries import derived_alias
from tests.api_errors import expect_error
from tests.aws.conftest import ACCOUNT_ID, REGION
from tests.aws.images_helpers import (
    DEFAULT_CONFIG,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    encode,
    image_manifest,
    new_image,
    put_image,
    upload_layer,
)
from tests.conftest import EcrdServer

TARGET_PREFIX = "SpencerFrontendService"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
INVALID = "InvalidParameterException"
NOT_FOUND = "RepositoryNotFoundException"
ALIAS = derived_alias(ACCOUNT_ID)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
CATALOG = {
    "description": "A small public image",
    "architectures": ["x86-64", "ARM 64"],
    "operatingSystems": ["Linux"],
    "aboutText": "# About\nIt is small.",
    "usageText": "docker pull it",
}


# Helpers


def unique_name(prefix: str = "pub") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def public_arn(name: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:ecr-public::{account}:repository/{name}"


def allow_policy(action: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
    }


def call_raw(server: EcrdServer, operation: str, body: dict[str, Any]) -> httpx.Response:
    """An ECR Public call on the wire (signed for ecr-public), to see members boto3 drops."""
    with server.http() as http:
        return http.post(
            "/",
            content=json.dumps(body),
            headers={
                "Content-Type": JSON_CONTENT_TYPE,
                "X-Amz-Target": f"{TARGET_PREFIX}.{operation}",
            },
        )


def all_pages(operation: Any, key: str, page_size: int, **arguments: Any) -> list[list[Any]]:
    pages: list[list[Any]] = []
    token: str | None = None
    while True:
        extra = {"nextToken": token} if token else {}
        answer = operation(maxResults=page_size, **arguments, **extra)
        pages.append(answer[key])
        token = answer.get("nextToken")
        if not token:
            return pages


@pytest.fixture(scope="module")
def public(server: EcrdServer) -> Any:
    return server.ecr("ecr-public")


@pytest.fixture(scope="module")
def unvalidated_public(server: EcrdServer) -> Any:
    return server.ecr("ecr-public", parameter_validation=False)


@pytest.fixture(scope="module")
def private(server: EcrdServer) -> Any:
    return server.ecr("ecr")


@pytest.fixture
def repo(public: Any) -> Iterator[str]:
    """A public repository created without catalog data; deleted (force) afterwards."""
    name = unique_name()
    public.create_repository(repositoryName=name)
    yield name
    with contextlib.suppress(public.exceptions.RepositoryNotFoundException):
        public.delete_repository(repositoryName=name, force=True)


# CreateRepository


def test_create_repository_with_catalog_data_and_tags(server: EcrdServer, public: Any) -> None:
    name = unique_name()
    started = datetime.now(UTC)
    created = public.create_repository(
        repositoryName=name,
        catalogData=CATALOG,
        tags=[{"Key": "team", "Value": "web"}, {"Key": "tier", "Value": "gold"}],
    )
    repository = created["repository"]
    assert repository["repositoryName"] == name
    assert repository["registryId"] == ACCOUNT_ID
    assert repository["repositoryArn"] == public_arn(name)
    assert repository["repositoryUri"] == f"{server.host}/{ALIAS}/{name}"
    assert abs(repository["createdAt"] - started) < timedelta(minutes=1)
    assert created["catalogData"] == {**CATALOG, "marketplaceCertified": False}
    assert public.get_repository_catalog_data(repositoryName=name)["catalogData"] == {
        **CATALOG,
        "marketplaceCertified": False,
    }
    tags = public.list_tags_for_resource(resourceArn=public_arn(name))["tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "web"), ("tier", "gold")]


def test_create_repository_answer_has_only_public_members(server: EcrdServer) -> None:
    name = unique_name()
    answer = call_raw(server, "CreateRepository", {"repositoryName": name})
    assert answer.status_code == 200, answer.text
    repository = answer.json()["repository"]
    # ECR Public's Repository has no mutability, scanning or encryption settings
    assert set(repository) == {
        "repositoryArn",
        "registryId",
        "repositoryName",
        "repositoryUri",
        "createdAt",
    }


def test_create_existing_repository_is_refused(public: Any, repo: str) -> None:
    message = expect_error(
        "RepositoryAlreadyExistsException", public.create_repository, repositoryName=repo
    )
    assert repo in message


@pytest.mark.parametrize("name", ["Upper/Case", "trailing-/x", "a//b", "bad name", "x" * 206])
def test_create_repository_with_invalid_name(unvalidated_public: Any, name: str) -> None:
    expect_error(INVALID, unvalidated_public.create_repository, repositoryName=name)


# DescribeRepositories


def test_describe_repositories_all_and_by_name(server: EcrdServer, public: Any) -> None:
    names = [unique_name() for _ in range(2)]
    for name in names:
        public.create_repository(repositoryName=name)
    everything = public.describe_repositories()["repositories"]
    listed = {repository["repositoryName"] for repository in everything}
    assert set(names) <= listed
    (found,) = public.describe_repositories(repositoryNames=[names[1]])["repositories"]
    assert found["repositoryName"] == names[1]
    assert found["repositoryArn"] == public_arn(names[1])
    assert found["repositoryUri"] == f"{server.host}/{ALIAS}/{names[1]}"
    assert found["registryId"] == ACCOUNT_ID
    both = public.describe_repositories(repositoryNames=names)["repositories"]
    assert sorted(r["repositoryName"] for r in both) == sorted(names)


def test_describe_repositories_pages(public: Any) -> None:
    names = {unique_name("page") for _ in range(3)}
    for name in names:
        public.create_repository(repositoryName=name)
    pages = all_pages(public.describe_repositories, "repositories", 2)
    assert all(len(page) <= 2 for page in pages)
    listed = [repository["repositoryName"] for page in pages for repository in page]
    assert len(listed) == len(set(listed))
    assert names <= set(listed)
    assert len(pages) >= 2


def test_describe_missing_repository(public: Any, repo: str) -> None:
    missing = unique_name()
    message = expect_error(NOT_FOUND, public.describe_repositories, repositoryNames=[repo, missing])
    assert missing in message


# DeleteRepository


def test_delete_empty_repository(public: Any) -> None:
    name = unique_name()
    public.create_repository(repositoryName=name)
    deleted = public.delete_repository(repositoryName=name)["repository"]
    assert deleted["repositoryName"] == name
    assert deleted["repositoryArn"] == public_arn(name)
    expect_error(NOT_FOUND, public.describe_repositories, repositoryNames=[name])
    expect_error(NOT_FOUND, public.delete_repository, repositoryName=name)


def test_delete_repository_with_images_needs_force(public: Any, repo: str) -> None:
    new_image(public, repo, "kept", "v1")
    expect_error("RepositoryNotEmptyException", public.delete_repository, repositoryName=repo)
    assert public.describe_repositories(repositoryNames=[repo])["repositories"]
    deleted = public.delete_repository(repositoryName=repo, force=True)["repository"]
    assert deleted["repositoryName"] == repo
    expect_error(NOT_FOUND, public.describe_repositories, repositoryNames=[repo])


# GetRepositoryCatalogData / PutRepositoryCatalogData


def test_catalog_data_not_found_before_any_is_put(public: Any, repo: str) -> None:
    expect_error(
        "RepositoryCatalogDataNotFoundException",
        public.get_repository_catalog_data,
        repositoryName=repo,
    )
    expect_error(NOT_FOUND, public.get_repository_catalog_data, repositoryName=unique_name())
    expect_error(
        NOT_FOUND,
        public.put_repository_catalog_data,
        repositoryName=unique_name(),
        catalogData={"description": "x"},
    )


def test_put_catalog_data_replaces_given_members_and_keeps_others(public: Any, repo: str) -> None:
    put = public.put_repository_catalog_data(
        repositoryName=repo,
        catalogData={"description": "first", "architectures": ["x86-64", "ARM 64"]},
    )["catalogData"]
    assert put == {
        "description": "first",
        "architectures": ["x86-64", "ARM 64"],
        "marketplaceCertified": False,
    }
    put = public.put_repository_catalog_data(
        repositoryName=repo,
        catalogData={"architectures": ["ARM"], "aboutText": "about", "usageText": "usage"},
    )["catalogData"]
    expected = {
        "description": "first",
        "architectures": ["ARM"],
        "aboutText": "about",
        "usageText": "usage",
        "marketplaceCertified": False,
    }
    assert put == expected
    assert public.get_repository_catalog_data(repositoryName=repo)["catalogData"] == expected


def test_png_logo_gives_logo_url(server: EcrdServer, public: Any, repo: str) -> None:
    put = public.put_repository_catalog_data(
        repositoryName=repo, catalogData={"logoImageBlob": PNG, "description": "with logo"}
    )["catalogData"]
    url = f"http://{server.host}/gallery/{ALIAS}/{repo}/logo.png"
    assert put["logoUrl"] == url
    assert public.get_repository_catalog_data(repositoryName=repo)["catalogData"]["logoUrl"] == url
    served = httpx.get(url, timeout=30)
    assert served.status_code == 200
    assert served.content == PNG
    # A later put without a logo keeps it
    put = public.put_repository_catalog_data(
        repositoryName=repo, catalogData={"description": "still with logo"}
    )["catalogData"]
    assert put["logoUrl"] == url


def test_non_png_logo_is_refused(public: Any, repo: str) -> None:
    public.put_repository_catalog_data(repositoryName=repo, catalogData={"description": "kept"})
    expect_error(
        INVALID,
        public.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={"logoImageBlob": b"GIF89a not a png", "description": "changed"},
    )
    stored = public.get_repository_catalog_data(repositoryName=repo)["catalogData"]
    assert stored == {"description": "kept", "marketplaceCertified": False}


def test_create_with_non_png_logo_creates_nothing(public: Any) -> None:
    name = unique_name()
    expect_error(
        INVALID,
        public.create_repository,
        repositoryName=name,
        catalogData={"logoImageBlob": b"\xff\xd8\xff\xe0 jpeg"},
    )
    expect_error(NOT_FOUND, public.describe_repositories, repositoryNames=[name])


@pytest.mark.parametrize(
    ("member", "limit"), [("description", 1024), ("aboutText", 25600), ("usageText", 25600)]
)
def test_catalog_text_lengths(unvalidated_public: Any, repo: str, member: str, limit: int) -> None:
    accepted = unvalidated_public.put_repository_catalog_data(
        repositoryName=repo, catalogData={member: "a" * limit}
    )["catalogData"]
    assert accepted[member] == "a" * limit
    expect_error(
        INVALID,
        unvalidated_public.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={member: "b" * (limit + 1)},
    )
    stored = unvalidated_public.get_repository_catalog_data(repositoryName=repo)["catalogData"]
    assert stored[member] == "a" * limit


def test_catalog_list_lengths(unvalidated_public: Any, repo: str) -> None:
    expect_error(
        INVALID,
        unvalidated_public.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={"architectures": [f"arch{n}" for n in range(51)]},
    )
    expect_error(
        INVALID,
        unvalidated_public.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={"operatingSystems": ["x" * 51]},
    )


# Registry: DescribeRegistries, Get/PutRegistryCatalogData


def test_describe_registries(server: EcrdServer, public: Any) -> None:
    (registry,) = public.describe_registries()["registries"]
    assert registry["registryId"] == ACCOUNT_ID
    assert registry["registryArn"] == f"arn:aws:ecr-public::{ACCOUNT_ID}:registry/{ACCOUNT_ID}"
    assert registry["registryUri"] == f"{server.host}/{ALIAS}"
    assert registry["aliases"] == [
        {
            "name": ALIAS,
            "status": "ACTIVE",
            "primaryRegistryAlias": True,
            "defaultRegistryAlias": True,
        }
    ]
    assert len(ALIAS) == 8 and ALIAS[0].isalpha()


def test_configured_alias_and_host(tmp_path: Path) -> None:
    host = "public.example.test:8443"
    instance = EcrdServer(
        tmp_path / "data",
        environment={"ECRD_PUBLIC_ALIAS": "myalias", "ECRD_PUBLIC_REGISTRY_HOST": host},
    )
    instance.start()
    try:
        public = instance.ecr("ecr-public")
        # A new registry has no catalog data yet
        assert public.get_registry_catalog_data()["registryCatalogData"] == {}
        (registry,) = public.describe_registries()["registries"]
        assert registry["registryUri"] == f"{host}/myalias"
        assert [alias["name"] for alias in registry["aliases"]] == ["myalias"]
        name = unique_name()
        created = public.create_repository(repositoryName=name, catalogData={"logoImageBlob": PNG})
        assert created["repository"]["repositoryUri"] == f"{host}/myalias/{name}"
        assert created["catalogData"]["logoUrl"] == (
            f"http://{host}/gallery/myalias/{name}/logo.png"
        )
    finally:
        instance.stop()


def test_registry_catalog_data(public: Any, unvalidated_public: Any) -> None:
    display_name = f"ecrd test {uuid.uuid4().hex[:8]}"
    put = public.put_registry_catalog_data(displayName=display_name)
    assert put["registryCatalogData"] == {"displayName": display_name}
    assert public.get_registry_catalog_data()["registryCatalogData"] == {
        "displayName": display_name
    }
    expect_error(INVALID, unvalidated_public.put_registry_catalog_data, displayName="n" * 101)
    assert public.get_registry_catalog_data()["registryCatalogData"]["displayName"] == (
        display_name
    )


# Layers


def test_layer_upload_in_parts_and_availability(public: Any, repo: str) -> None:
    data = b"0123456789abcdefghij-public-layer"
    started = public.initiate_layer_upload(repositoryName=repo)
    upload_id = started["uploadId"]
    assert upload_id and started["partSize"] > 0
    first = public.upload_layer_part(
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=9,
        layerPartBlob=data[:10],
    )
    assert first == {
        "registryId": ACCOUNT_ID,
        "repositoryName": repo,
        "uploadId": upload_id,
        "lastByteReceived": 9,
        "ResponseMetadata": first["ResponseMetadata"],
    }
    second = public.upload_layer_part(
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=10,
        partLastByte=len(data) - 1,
        layerPartBlob=data[10:],
    )
    assert second["lastByteReceived"] == len(data) - 1
    completed = public.complete_layer_upload(
        repositoryName=repo, uploadId=upload_id, layerDigests=[digest_of(data)]
    )
    assert completed["layerDigest"] == digest_of(data)
    assert completed["registryId"] == ACCOUNT_ID
    assert completed["repositoryName"] == repo
    assert completed["uploadId"] == upload_id
    missing = digest_of(b"never uploaded")
    checked = public.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest_of(data), missing]
    )
    available = [
        (layer["layerDigest"], layer["layerAvailability"], layer["layerSize"])
        for layer in checked["layers"]
    ]
    assert available == [(digest_of(data), "AVAILABLE", len(data))]
    assert [(f["layerDigest"], f["failureCode"]) for f in checked["failures"]] == [
        (missing, "MissingLayerDigest")
    ]


def test_layer_errors(public: Any, repo: str) -> None:
    expect_error(NOT_FOUND, public.initiate_layer_upload, repositoryName=unique_name())
    expect_error(
        NOT_FOUND,
        public.batch_check_layer_availability,
        repositoryName=unique_name(),
        layerDigests=[digest_of(b"x")],
    )
    expect_error(
        "UploadNotFoundException",
        public.upload_layer_part,
        repositoryName=repo,
        uploadId=str(uuid.uuid4()),
        partFirstByte=0,
        partLastByte=0,
        layerPartBlob=b"x",
    )
    upload_id = public.initiate_layer_upload(repositoryName=repo)["uploadId"]
    public.upload_layer_part(
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=4,
        layerPartBlob=b"bytes",
    )
    expect_error(
        "InvalidLayerException",
        public.complete_layer_upload,
        repositoryName=repo,
        uploadId=upload_id,
        layerDigests=[digest_of(b"other bytes")],
    )
    expect_error(
        "UploadNotFoundException",
        public.complete_layer_upload,
        repositoryName=repo,
        uploadId=str(uuid.uuid4()),
        layerDigests=[digest_of(b"bytes")],
    )


# PutImage, DescribeImages, DescribeImageTags, BatchDeleteImage


def test_put_image_then_describe(public: Any, repo: str) -> None:
    layers = [b"public layer one", b"public layer two, longer"]
    manifest = image_manifest(public, repo, layers=layers)
    started = datetime.now(UTC)
    image = put_image(public, repo, manifest, "v1")
    assert image["registryId"] == ACCOUNT_ID
    assert image["repositoryName"] == repo
    assert image["imageId"] == {"imageDigest": digest_of(manifest), "imageTag": "v1"}
    assert image["imageManifest"] == manifest
    assert image["imageManifestMediaType"] == OCI_MANIFEST
    size = len(DEFAULT_CONFIG) + sum(len(layer) for layer in layers)

    (detail,) = public.describe_images(repositoryName=repo)["imageDetails"]
    assert detail["registryId"] == ACCOUNT_ID
    assert detail["repositoryName"] == repo
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == size
    assert abs(detail["imagePushedAt"] - started) < timedelta(minutes=1)
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == OCI_CONFIG

    (tag,) = public.describe_image_tags(repositoryName=repo)["imageTagDetails"]
    assert tag["imageTag"] == "v1"
    assert abs(tag["createdAt"] - started) < timedelta(minutes=1)
    assert tag["imageDetail"] == {
        "imageDigest": digest_of(manifest),
        "imageSizeInBytes": size,
        "imagePushedAt": detail["imagePushedAt"],
        "imageManifestMediaType": OCI_MANIFEST,
        "artifactMediaType": OCI_CONFIG,
    }


def test_put_image_errors(public: Any, repo: str) -> None:
    manifest = image_manifest(public, repo)
    put_image(public, repo, manifest, "v1")
    expect_error(
        "ImageAlreadyExistsException",
        public.put_image,
        repositoryName=repo,
        imageManifest=manifest,
        imageTag="v1",
    )
    dangling = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, DEFAULT_CONFIG),
            "layers": [descriptor(OCI_LAYER, b"a layer never uploaded")],
        }
    )
    expect_error(
        "LayersNotFoundException",
        public.put_image,
        repositoryName=repo,
        imageManifest=dangling,
        imageTag="v2",
    )
    expect_error(NOT_FOUND, public.put_image, repositoryName=unique_name(), imageManifest=manifest)
    expect_error(
        "ImageNotFoundException",
        public.describe_images,
        repositoryName=repo,
        imageIds=[{"imageTag": "absent"}],
    )
    expect_error(NOT_FOUND, public.describe_image_tags, repositoryName=unique_name())


def test_describe_image_tags_pages(public: Any, repo: str) -> None:
    manifest = image_manifest(public, repo, layers=[b"tagged thrice"])
    for tag in ("a", "b", "c"):
        put_image(public, repo, manifest, tag)
    other = new_image(public, repo, "other", "d")
    new_image(public, repo, "untagged")
    pages = all_pages(public.describe_image_tags, "imageTagDetails", 1, repositoryName=repo)
    assert [len(page) for page in pages] == [1, 1, 1, 1]
    by_tag = {
        detail["imageTag"]: detail["imageDetail"]["imageDigest"] for p in pages for detail in p
    }
    digest = digest_of(manifest)
    assert by_tag == {"a": digest, "b": digest, "c": digest, "d": other}
    everything = public.describe_image_tags(repositoryName=repo)
    assert len(everything["imageTagDetails"]) == 4
    assert "nextToken" not in everything


def test_batch_delete_image(public: Any, repo: str) -> None:
    digest = new_image(public, repo, "doomed", "v1")
    kept = new_image(public, repo, "kept", "v2")
    deleted = public.batch_delete_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageTag": "absent"}]
    )
    assert deleted["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
    assert [(f["imageId"], f["failureCode"]) for f in deleted["failures"]] == [
        ({"imageTag": "absent"}, "ImageNotFound")
    ]
    tags = public.describe_image_tags(repositoryName=repo)["imageTagDetails"]
    assert [(t["imageTag"], t["imageDetail"]["imageDigest"]) for t in tags] == [("v2", kept)]
    expect_error(
        NOT_FOUND,
        public.batch_delete_image,
        repositoryName=unique_name(),
        imageIds=[{"imageTag": "v1"}],
    )


# Repository policies


def test_repository_policy_lifecycle(public: Any, unvalidated_public: Any, repo: str) -> None:
    no_policy = "RepositoryPolicyNotFoundException"
    expect_error(no_policy, public.get_repository_policy, repositoryName=repo)
    expect_error(no_policy, public.delete_repository_policy, repositoryName=repo)
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowPush",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                    "Action": ["ecr-public:PutImage"],
                }
            ],
        }
    )
    set_answer = public.set_repository_policy(repositoryName=repo, policyText=policy)
    assert set_answer["registryId"] == ACCOUNT_ID
    assert set_answer["repositoryName"] == repo
    assert json.loads(set_answer["policyText"]) == json.loads(policy)
    got = public.get_repository_policy(repositoryName=repo)
    assert json.loads(got["policyText"]) == json.loads(policy)
    assert got["repositoryName"] == repo
    deleted = public.delete_repository_policy(repositoryName=repo)
    assert json.loads(deleted["policyText"]) == json.loads(policy)
    expect_error(no_policy, public.get_repository_policy, repositoryName=repo)
    expect_error(
        INVALID, unvalidated_public.set_repository_policy, repositoryName=repo, policyText="{"
    )
    expect_error(
        NOT_FOUND, public.set_repository_policy, repositoryName=unique_name(), policyText=policy
    )


# Resource tags


def test_tag_untag_list(public: Any, repo: str) -> None:
    arn = public_arn(repo)
    assert public.list_tags_for_resource(resourceArn=arn)["tags"] == []
    public.tag_resource(
        resourceArn=arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    )
    public.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "changed"}])
    tags = public.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("a", "changed"), ("b", "2")]
    public.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert public.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]


def test_tag_arns_of_other_services_or_repositories(public: Any, private: Any, repo: str) -> None:
    private_arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{repo}"
    invalid_arn = "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"
    messages = [
        expect_error(INVALID, public.list_tags_for_resource, resourceArn=private_arn),
        expect_error(
            INVALID, public.tag_resource, resourceArn=private_arn, tags=[{"Key": "k", "Value": "v"}]
        ),
        expect_error(INVALID, public.untag_resource, resourceArn=private_arn, tagKeys=["k"]),
        expect_error(INVALID, public.list_tags_for_resource, resourceArn="not-an-arn"),
        # ECR does not take an ECR Public ARN either
        expect_error(INVALID, private.list_tags_for_resource, resourceArn=public_arn(repo)),
    ]
    assert messages == [invalid_arn] * len(messages)
    expect_error(NOT_FOUND, public.list_tags_for_resource, resourceArn=public_arn(unique_name()))


# GetAuthorizationToken


def test_get_authorization_token(server: EcrdServer, public: Any) -> None:
    before = datetime.now(UTC)
    data = public.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and password
    assert abs(data["expiresAt"] - (before + timedelta(hours=12))) < timedelta(minutes=2)
    # The password logs in to the registry
    login = httpx.get(f"{server.url}/v2/", auth=("AWS", password), timeout=30)
    assert login.status_code == 200
    raw = call_raw(server, "GetAuthorizationToken", {})
    assert raw.status_code == 200
    assert set(raw.json()["authorizationData"]) == {"authorizationToken", "expiresAt"}


# Public and private registries are apart


def test_public_and_private_repositories_of_one_name_are_independent(
    server: EcrdServer, public: Any, private: Any
) -> None:
    name = unique_name("both")
    private.create_repository(repositoryName=name)
    created = public.create_repository(repositoryName=name)["repository"]
    assert created["repositoryUri"] == f"{server.host}/{ALIAS}/{name}"
    (in_private,) = private.describe_repositories(repositoryNames=[name])["repositories"]
    assert in_private["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"
    # An image put in the public one is not in the private one
    digest = new_image(public, name, "public only", "v1")
    assert private.describe_images(repositoryName=name)["imageDetails"] == []
    assert public.describe_images(repositoryName=name)["imageDetails"][0]["imageDigest"] == digest
    # and a layer uploaded to the private one is not available in the public one
    layer = upload_layer(private, name, b"private only layer")
    checked = public.batch_check_layer_availability(repositoryName=name, layerDigests=[layer])
    assert checked["layers"] == []
    # Tags are apart too
    public.tag_resource(resourceArn=public_arn(name), tags=[{"Key": "side", "Value": "public"}])
    private_tags = private.list_tags_for_resource(resourceArn=in_private["repositoryArn"])["tags"]
    assert private_tags == []
    # Deleting the private one leaves the public one
    private.delete_repository(repositoryName=name, force=True)
    assert public.describe_repositories(repositoryNames=[name])["repositories"]
    expect_error(NOT_FOUND, private.describe_repositories, repositoryNames=[name])
    # and a public-only name is unknown to ECR
    only_public = unique_name()
    public.create_repository(repositoryName=only_public)
    expect_error(NOT_FOUND, private.describe_repositories, repositoryNames=[only_public])


# Authorization: ecr: and ecr-public: actions are apart


def test_ecr_actions_do_not_allow_ecr_public(server: EcrdServer, public: Any, repo: str) -> None:
    ecr_only = server.create_key(
        user=f"ecr-{uuid.uuid4().hex[:8]}", policies=[allow_policy("ecr:*")]
    )
    as_ecr_only = server.ecr_as(ecr_only, "ecr-public")
    expect_error("AccessDeniedException", as_ecr_only.describe_repositories, repositoryNames=[repo])
    expect_error(
        "AccessDeniedException", as_ecr_only.create_repository, repositoryName=unique_name()
    )
    expect_error("AccessDeniedException", as_ecr_only.get_authorization_token)
    # while ECR itself is allowed
    server.ecr_as(ecr_only).describe_repositories()

    public_only = server.create_key(
        user=f"pub-{uuid.uuid4().hex[:8]}", policies=[allow_policy("ecr-public:*")]
    )
    as_public_only = server.ecr_as(public_only, "ecr-public")
    (found,) = as_public_only.describe_repositories(repositoryNames=[repo])["repositories"]
    assert found["repositoryName"] == repo
    assert as_public_only.get_authorization_token()["authorizationData"]["authorizationToken"]
    expect_error("AccessDeniedException", server.ecr_as(public_only).describe_repositories)


def test_action_names_are_per_operation(server: EcrdServer, public: Any, repo: str) -> None:
    key = server.create_key(
        user=f"reader-{uuid.uuid4().hex[:8]}",
        policies=[allow_policy("ecr-public:DescribeRepositories")],
    )
    reader = server.ecr_as(key, "ecr-public")
    assert reader.describe_repositories(repositoryNames=[repo])["repositories"]
    expect_error(
        "AccessDeniedException",
        reader.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={"description": "x"},
    )
    expect_error("AccessDeniedException", reader.delete_repository, repositoryName=repo)


# More documented errors and edges


def test_create_with_over_limit_catalog_data_creates_nothing(unvalidated_public: Any) -> None:
    name = unique_name()
    expect_error(
        INVALID,
        unvalidated_public.create_repository,
        repositoryName=name,
        catalogData={"description": "d" * 1025},
    )
    expect_error(NOT_FOUND, unvalidated_public.describe_repositories, repositoryNames=[name])


def test_logo_over_limit_is_refused(unvalidated_public: Any, repo: str) -> None:
    expect_error(
        INVALID,
        unvalidated_public.put_repository_catalog_data,
        repositoryName=repo,
        catalogData={"logoImageBlob": PNG + bytes(512001 - len(PNG))},
    )


def test_recreated_repository_starts_without_catalog_data_or_tags(public: Any) -> None:
    name = unique_name()
    public.create_repository(
        repositoryName=name, catalogData={"description": "old"}, tags=[{"Key": "k", "Value": "v"}]
    )
    public.delete_repository(repositoryName=name, force=True)
    public.create_repository(repositoryName=name)
    expect_error(
        "RepositoryCatalogDataNotFoundException",
        public.get_repository_catalog_data,
        repositoryName=name,
    )
    assert public.list_tags_for_resource(resourceArn=public_arn(name))["tags"] == []


def test_too_many_tags(public: Any, repo: str) -> None:
    tags = [{"Key": f"k{n}", "Value": "v"} for n in range(51)]
    expect_error(
        "TooManyTagsException", public.tag_resource, resourceArn=public_arn(repo), tags=tags
    )
    assert public.list_tags_for_resource(resourceArn=public_arn(repo))["tags"] == []


def test_layer_part_out_of_order_and_layer_already_exists(public: Any, repo: str) -> None:
    upload_id = public.initiate_layer_upload(repositoryName=repo)["uploadId"]
    expect_error(
        "InvalidLayerPartException",
        public.upload_layer_part,
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=5,
        partLastByte=9,
        layerPartBlob=b"later",
    )
    data = b"a layer uploaded twice"
    upload_layer(public, repo, data)
    again = public.initiate_layer_upload(repositoryName=repo)["uploadId"]
    public.upload_layer_part(
        repositoryName=repo,
        uploadId=again,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    expect_error(
        "LayerAlreadyExistsException",
        public.complete_layer_upload,
        repositoryName=repo,
        uploadId=again,
        layerDigests=[digest_of(data)],
    )


def test_describe_image_tags_token_belongs_to_its_repository(public: Any, repo: str) -> None:
    other = unique_name()
    public.create_repository(repositoryName=other)
    for name in (repo, other):
        new_image(public, name, f"{name} one", "one")
        new_image(public, name, f"{name} two", "two")
    token = public.describe_image_tags(repositoryName=repo, maxResults=1)["nextToken"]
    expect_error(INVALID, public.describe_image_tags, repositoryName=other, nextToken=token)
    expect_error(INVALID, public.describe_image_tags, repositoryName=repo, nextToken="not a token")
    public.delete_repository(repositoryName=other, force=True)


def test_describe_images_answer_has_only_public_members(server: EcrdServer, public: Any) -> None:
    name = unique_name()
    public.create_repository(repositoryName=name)
    new_image(public, name, "raw", "v1")
    answer = call_raw(server, "DescribeImages", {"repositoryName": name})
    assert answer.status_code == 200, answer.text
    (detail,) = answer.json()["imageDetails"]
    allowed = {
        "registryId",
        "repositoryName",
        "imageDigest",
        "imageTags",
        "imageSizeInBytes",
        "imagePushedAt",
        "imageManifestMediaType",
        "artifactMediaType",
    }
    assert set(detail) <= allowed
    assert {"imageDigest", "imageTags", "imagePushedAt"} <= set(detail)
    public.delete_repository(repositoryName=name, force=True)


def test_tag_created_at_is_when_the_tag_was_made(public: Any, repo: str) -> None:
    manifest = image_manifest(public, repo, layers=[b"tagged later"])
    put_image(public, repo, manifest, "first")
    time.sleep(1.5)
    tagged_at = datetime.now(UTC)
    put_image(public, repo, manifest, "second")
    details = public.describe_image_tags(repositoryName=repo)["imageTagDetails"]
    created = {detail["imageTag"]: detail["createdAt"] for detail in details}
    assert created["second"] >= tagged_at - timedelta(milliseconds=500)
