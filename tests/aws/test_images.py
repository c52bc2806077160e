"""ECR image operations through boto3 against the real server: PutImage, BatchGetImage,
BatchDeleteImage, DescribeImages, ListImages, ListImageReferrers, and the same images seen
through the OCI data plane."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT_ID, ecr_client, unvalidated_client
from tests.aws.images_helpers import (
    DEFAULT_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    encode,
    ensure_layer,
    error_code,
    image_manifest,
    index_manifest,
    new_image,
    put_image,
)
from tests.conftest import EcrdServer

PULL_TIME_WAIT_SECONDS = 5


# PutImage


def test_put_image_returns_the_image_with_the_exact_manifest(ecr: Any, new_repository: str) -> None:
    # Given an OCI image manifest over uploaded blobs
    manifest = image_manifest(ecr, new_repository)
    # When it is put with a tag
    image = put_image(ecr, new_repository, manifest, "v1")
    # Then ECR answers with the image, its digest the sha256 of the manifest bytes
    assert image == {
        "registryId": ACCOUNT_ID,
        "repositoryName": new_repository,
        "imageId": {"imageDigest": digest_of(manifest), "imageTag": "v1"},
        "imageManifest": manifest,
        "imageManifestMediaType": OCI_MANIFEST,
    }


def test_put_docker_v2_manifest_keeps_its_media_type(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository, media_type=DOCKER_MANIFEST)
    image = put_image(ecr, new_repository, manifest, "docker")
    assert image["imageManifestMediaType"] == DOCKER_MANIFEST
    assert image["imageId"]["imageDigest"] == digest_of(manifest)


def test_put_image_with_the_wrong_digest_is_refused(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    with pytest.raises(ClientError) as refused:
        put_image(ecr, new_repository, manifest, "v1", imageDigest=digest_of(b"something else"))
    assert error_code(refused) == "ImageDigestDoesNotMatchException"
    assert ecr.list_images(repositoryName=new_repository)["imageIds"] == []


def test_put_image_with_the_right_digest_is_accepted(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    image = put_image(ecr, new_repository, manifest, "v1", imageDigest=digest_of(manifest))
    assert image["imageId"]["imageDigest"] == digest_of(manifest)


def test_same_manifest_and_tag_again_is_image_already_exists(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, manifest, "v1")
    with pytest.raises(ClientError) as refused:
        put_image(ecr, new_repository, manifest, "v1")
    assert error_code(refused) == "ImageAlreadyExistsException"


def test_same_manifest_under_a_new_tag_gives_one_image_two_tags(
    ecr: Any, new_repository: str
) -> None:
    manifest = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, manifest, "v1")
    image = put_image(ecr, new_repository, manifest, "latest")
    assert image["imageId"] == {"imageDigest": digest_of(manifest), "imageTag": "latest"}
    details = ecr.describe_images(repositoryName=new_repository)["imageDetails"]
    assert len(details) == 1
    assert sorted(details[0]["imageTags"]) == ["latest", "v1"]


def test_put_image_with_missing_layers_is_refused(ecr: Any, new_repository: str) -> None:
    ensure_layer(ecr, new_repository, DEFAULT_CONFIG)
    manifest = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, DEFAULT_CONFIG),
            "layers": [descriptor(OCI_LAYER, b"never uploaded")],
        }
    )
    with pytest.raises(ClientError) as refused:
        put_image(ecr, new_repository, manifest, "v1")
    assert error_code(refused) == "LayersNotFoundException"


def test_put_index_with_unknown_children_is_refused(ecr: Any, new_repository: str) -> None:
    # Given an index whose children were never put into the repository
    child = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, DEFAULT_CONFIG),
            "layers": [],
        }
    )
    with pytest.raises(ClientError) as refused:
        put_image(ecr, new_repository, index_manifest([child]), "multi")
    assert error_code(refused) == "ReferencedImagesNotFoundException"


def test_put_index_over_children_in_the_repository(ecr: Any, new_repository: str) -> None:
    children = [
        image_manifest(ecr, new_repository, layers=[f"arch {n}".encode()]) for n in range(2)
    ]
    for child in children:
        put_image(ecr, new_repository, child)
    index = index_manifest(children)
    image = put_image(ecr, new_repository, index, "multi")
    assert image["imageManifestMediaType"] == OCI_INDEX
    assert image["imageId"]["imageDigest"] == digest_of(index)


@pytest.mark.parametrize("manifest", ["{not json", '{"schemaVersion": 2, "config": '])
def test_put_image_with_an_invalid_manifest_is_invalid_parameter(
    ecr: Any, new_repository: str, manifest: str
) -> None:
    with pytest.raises(ClientError) as refused:
        put_image(ecr, new_repository, manifest, "v1")
    assert error_code(refused) == "InvalidParameterException"


def test_put_image_into_a_missing_repository(ecr: Any) -> None:
    with pytest.raises(ClientError) as refused:
        put_image(ecr, f"missing/{uuid.uuid4().hex[:12]}", encode({"schemaVersion": 2}), "v1")
    assert error_code(refused) == "RepositoryNotFoundException"


def test_media_type_parameter_serves_a_manifest_without_media_type_field(
    ecr: Any, new_repository: str
) -> None:
    # Given an OCI manifest that leaves out its optional mediaType field
    document = json.loads(image_manifest(ecr, new_repository))
    del document["mediaType"]
    manifest = encode(document)
    # When it is put with imageManifestMediaType
    image = put_image(ecr, new_repository, manifest, "v1", imageManifestMediaType=OCI_MANIFEST)
    # Then the image has that media type, and the manifest text is kept as sent
    assert image["imageManifestMediaType"] == OCI_MANIFEST
    assert image["imageManifest"] == manifest
    fetched = ecr.batch_get_image(repositoryName=new_repository, imageIds=[{"imageTag": "v1"}])
    assert fetched["images"][0]["imageManifestMediaType"] == OCI_MANIFEST
    assert fetched["images"][0]["imageManifest"] == manifest


# BatchGetImage


def test_batch_get_image_by_tag_digest_and_both(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    digest = digest_of(manifest)
    put_image(ecr, new_repository, manifest, "v1")
    both = {"imageTag": "v1", "imageDigest": digest}
    fetched = ecr.batch_get_image(
        repositoryName=new_repository, imageIds=[{"imageTag": "v1"}, {"imageDigest": digest}, both]
    )
    assert fetched["failures"] == []
    assert len(fetched["images"]) == 3
    for image in fetched["images"]:
        assert image["registryId"] == ACCOUNT_ID
        assert image["repositoryName"] == new_repository
        assert image["imageId"]["imageDigest"] == digest
        assert image["imageManifest"] == manifest
        assert image["imageManifestMediaType"] == OCI_MANIFEST
    assert [image["imageId"].get("imageTag") for image in fetched["images"]] == ["v1", None, "v1"]


def test_batch_get_image_failures(server: EcrdServer, ecr: Any, new_repository: str) -> None:
    # Given a repository with an image tagged v1 and another image tagged v2
    put_image(ecr, new_repository, image_manifest(ecr, new_repository), "v1")
    other_digest = new_image(ecr, new_repository, "other", "v2")
    missing = digest_of(b"not an image")
    # When ids that name nothing, or a tag and digest that disagree, are asked for
    fetched = unvalidated_client(server).batch_get_image(
        repositoryName=new_repository,
        imageIds=[
            {"imageTag": "nope"},
            {"imageDigest": missing},
            {},
            {"imageTag": "v1", "imageDigest": other_digest},
        ],
    )
    # Then each gets a failure with ECR's code and a reason, and no image comes back
    assert fetched["images"] == []
    assert [(f["imageId"], f["failureCode"]) for f in fetched["failures"]] == [
        ({"imageTag": "nope"}, "ImageNotFound"),
        ({"imageDigest": missing}, "ImageNotFound"),
        ({}, "MissingDigestAndTag"),
        ({"imageTag": "v1", "imageDigest": other_digest}, "ImageTagDoesNotMatchDigest"),
    ]
    assert fetched["failures"][0]["failureReason"] == "Requested image not found"
    assert all(failure["failureReason"] for failure in fetched["failures"])


def test_batch_get_image_answers_each_id_of_a_mixed_batch(ecr: Any, new_repository: str) -> None:
    # Given images found by tag, by digest, by both, and an untagged one
    first = new_image(ecr, new_repository, "first", "v1")
    second = new_image(ecr, new_repository, "second", "v2")
    untagged = new_image(ecr, new_repository, "untagged")
    # A tag of the same name in another repository must not answer for this one's
    elsewhere = f"{new_repository}-other"
    ecr.create_repository(repositoryName=elsewhere)
    new_image(ecr, elsewhere, "elsewhere", "only-elsewhere")
    ids = [
        {"imageTag": "v2"},
        {"imageDigest": untagged},
        {"imageTag": "v1", "imageDigest": first},
        {"imageTag": "only-elsewhere"},
        {"imageDigest": second},
    ]
    fetched = ecr.batch_get_image(repositoryName=new_repository, imageIds=ids)
    # Then every image found comes back with the id it was asked by, in the order asked
    assert [
        (i["imageId"].get("imageTag"), i["imageId"]["imageDigest"]) for i in fetched["images"]
    ] == [
        ("v2", second),
        (None, untagged),
        ("v1", first),
        (None, second),
    ]
    assert all(
        digest_of(i["imageManifest"]) == i["imageId"]["imageDigest"] for i in fetched["images"]
    )
    assert [(f["imageId"], f["failureCode"]) for f in fetched["failures"]] == [
        ({"imageTag": "only-elsewhere"}, "ImageNotFound")
    ]
    ecr.delete_repository(repositoryName=elsewhere, force=True)


@pytest.mark.parametrize("malformed", ["no-colon-at-all", "sha256:not-hex", "sha256:abc"])
def test_batch_get_image_with_a_malformed_digest(
    ecr: Any, new_repository: str, malformed: str
) -> None:
    new_image(ecr, new_repository, "present", "v1")
    fetched = ecr.batch_get_image(
        repositoryName=new_repository, imageIds=[{"imageDigest": malformed}]
    )
    assert fetched["images"] == []
    assert [(f["imageId"], f["failureCode"]) for f in fetched["failures"]] == [
        ({"imageDigest": malformed}, "InvalidImageDigest")
    ]


def test_batch_get_image_with_accepted_media_types(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, manifest, "v1")
    fetched = ecr.batch_get_image(
        repositoryName=new_repository,
        imageIds=[{"imageTag": "v1"}],
        acceptedMediaTypes=[DOCKER_MANIFEST, OCI_MANIFEST],
    )
    assert fetched["failures"] == []
    assert fetched["images"][0]["imageManifest"] == manifest
    assert fetched["images"][0]["imageManifestMediaType"] == OCI_MANIFEST


def _wait_for_pull_time(ecr: Any, repository: str) -> dict[str, Any]:
    """The image's detail once lastRecordedPullTime shows (written in the background)."""
    deadline = time.monotonic() + PULL_TIME_WAIT_SECONDS
    while True:
        detail: dict[str, Any] = ecr.describe_images(repositoryName=repository)["imageDetails"][0]
        if "lastRecordedPullTime" in detail or time.monotonic() > deadline:
            return detail
        time.sleep(0.1)


def test_a_pull_is_recorded_as_last_recorded_pull_time(ecr: Any, new_repository: str) -> None:
    # Given an image never pulled
    put_image(ecr, new_repository, image_manifest(ecr, new_repository), "v1")
    before = ecr.describe_images(repositoryName=new_repository)["imageDetails"][0]
    assert "lastRecordedPullTime" not in before
    # When it is fetched with BatchGetImage
    ecr.batch_get_image(repositoryName=new_repository, imageIds=[{"imageTag": "v1"}])
    # Then DescribeImages shows a pull time, recorded shortly after
    detail = _wait_for_pull_time(ecr, new_repository)
    assert "lastRecordedPullTime" in detail
    assert detail["lastRecordedPullTime"] >= before["imagePushedAt"] - timedelta(seconds=1)


def test_every_image_of_one_batch_get_has_its_pull_recorded(ecr: Any, new_repository: str) -> None:
    # Given three images never pulled, and one not asked for
    digests = [new_image(ecr, new_repository, f"pulled {n}", f"v{n}") for n in range(3)]
    left_alone = new_image(ecr, new_repository, "not pulled", "other")
    # When all three are fetched in one BatchGetImage
    ecr.batch_get_image(
        repositoryName=new_repository, imageIds=[{"imageDigest": d} for d in digests]
    )
    # Then each of them shows a pull time, and the other none
    deadline = time.monotonic() + PULL_TIME_WAIT_SECONDS
    while True:
        details = {
            d["imageDigest"]: d
            for d in ecr.describe_images(repositoryName=new_repository)["imageDetails"]
        }
        recorded = {digest for digest, d in details.items() if "lastRecordedPullTime" in d}
        if recorded >= set(digests) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert recorded == set(digests)
    assert "lastRecordedPullTime" not in details[left_alone]


def test_a_pull_is_recorded_after_another_pulled_image_was_deleted(
    own_server: EcrdServer,
) -> None:
    # Given a registry where an image was pulled and then deleted with its repository
    ecr = ecr_client(own_server)
    for name in ("first/repo", "second/repo"):
        ecr.create_repository(repositoryName=name)
        put_image(ecr, name, image_manifest(ecr, name, layers=[name.encode()]), "v1")
        # When the repository's image is pulled
        ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
        # Then its pull is recorded, whatever happened to images before it
        assert "lastRecordedPullTime" in _wait_for_pull_time(ecr, name), name
        ecr.delete_repository(repositoryName=name, force=True)


# BatchDeleteImage


def test_delete_by_digest_removes_the_image_and_all_its_tags(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    digest = digest_of(manifest)
    put_image(ecr, new_repository, manifest, "v1")
    put_image(ecr, new_repository, manifest, "latest")
    deleted = ecr.batch_delete_image(
        repositoryName=new_repository, imageIds=[{"imageDigest": digest}]
    )
    assert deleted["failures"] == []
    assert sorted(deleted["imageIds"], key=lambda i: i["imageTag"]) == [
        {"imageDigest": digest, "imageTag": "latest"},
        {"imageDigest": digest, "imageTag": "v1"},
    ]
    assert ecr.list_images(repositoryName=new_repository)["imageIds"] == []


def test_delete_by_one_of_two_tags_only_untags(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    digest = digest_of(manifest)
    put_image(ecr, new_repository, manifest, "v1")
    put_image(ecr, new_repository, manifest, "latest")
    deleted = ecr.batch_delete_image(repositoryName=new_repository, imageIds=[{"imageTag": "v1"}])
    assert deleted["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
    details = ecr.describe_images(repositoryName=new_repository)["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(digest, ["latest"])]


def test_delete_by_last_tag_deletes_the_image(ecr: Any, new_repository: str) -> None:
    digest = new_image(ecr, new_repository, "only", "v1")
    deleted = ecr.batch_delete_image(repositoryName=new_repository, imageIds=[{"imageTag": "v1"}])
    assert deleted == {
        "imageIds": [{"imageDigest": digest, "imageTag": "v1"}],
        "failures": [],
        "ResponseMetadata": deleted["ResponseMetadata"],
    }
    assert ecr.describe_images(repositoryName=new_repository)["imageDetails"] == []


def test_delete_missing_image_is_a_failure(ecr: Any, new_repository: str) -> None:
    missing = digest_of(b"missing")
    deleted = ecr.batch_delete_image(
        repositoryName=new_repository, imageIds=[{"imageTag": "nope"}, {"imageDigest": missing}]
    )
    assert deleted["imageIds"] == []
    assert [(f["imageId"], f["failureCode"]) for f in deleted["failures"]] == [
        ({"imageTag": "nope"}, "ImageNotFound"),
        ({"imageDigest": missing}, "ImageNotFound"),
    ]


def test_child_of_an_index_cannot_be_deleted_until_the_index_is(
    ecr: Any, new_repository: str
) -> None:
    # Given an index over a child image, both in the repository
    child = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, child)
    index = index_manifest([child])
    put_image(ecr, new_repository, index, "multi")
    child_id = {"imageDigest": digest_of(child)}
    # When the child is deleted, then it is refused as referenced
    refused = ecr.batch_delete_image(repositoryName=new_repository, imageIds=[child_id])
    assert refused["imageIds"] == []
    assert [(f["imageId"], f["failureCode"]) for f in refused["failures"]] == [
        (child_id, "ImageReferencedByManifestList")
    ]
    # When the index goes first, then the child can be deleted
    ecr.batch_delete_image(repositoryName=new_repository, imageIds=[{"imageTag": "multi"}])
    deleted = ecr.batch_delete_image(repositoryName=new_repository, imageIds=[child_id])
    assert deleted["failures"] == []
    assert deleted["imageIds"] == [child_id]


# DescribeImages


def test_describe_images_details(ecr: Any, new_repository: str) -> None:
    layers = [b"first layer", b"second, longer layer"]
    manifest = image_manifest(ecr, new_repository, layers=layers)
    started = datetime.now(UTC)
    put_image(ecr, new_repository, manifest, "v1")
    (detail,) = ecr.describe_images(repositoryName=new_repository)["imageDetails"]
    assert detail["registryId"] == ACCOUNT_ID
    assert detail["repositoryName"] == new_repository
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == len(DEFAULT_CONFIG) + sum(len(layer) for layer in layers)
    assert abs(detail["imagePushedAt"] - started) < timedelta(minutes=1)
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == OCI_CONFIG


def test_describe_images_tag_status_filter(ecr: Any, new_repository: str) -> None:
    tagged = new_image(ecr, new_repository, "tagged", "v1")
    untagged = new_image(ecr, new_repository, "untagged")

    def described(tag_status: str) -> set[str]:
        details = ecr.describe_images(
            repositoryName=new_repository, filter={"tagStatus": tag_status}
        )["imageDetails"]
        return {detail["imageDigest"] for detail in details}

    assert described("TAGGED") == {tagged}
    assert described("UNTAGGED") == {untagged}
    assert described("ANY") == {tagged, untagged}


def test_describe_images_by_id(ecr: Any, new_repository: str) -> None:
    first = new_image(ecr, new_repository, "first", "v1")
    second = new_image(ecr, new_repository, "second")
    details = ecr.describe_images(
        repositoryName=new_repository, imageIds=[{"imageTag": "v1"}, {"imageDigest": second}]
    )["imageDetails"]
    assert sorted(detail["imageDigest"] for detail in details) == sorted([first, second])


def test_describe_images_with_a_missing_id(ecr: Any, new_repository: str) -> None:
    new_image(ecr, new_repository, "present", "v1")
    with pytest.raises(ClientError) as refused:
        ecr.describe_images(repositoryName=new_repository, imageIds=[{"imageTag": "nope"}])
    assert error_code(refused) == "ImageNotFoundException"


@pytest.fixture
def five_images(ecr: Any, new_repository: str) -> set[str]:
    return {new_image(ecr, new_repository, f"image {n}", f"t{n}") for n in range(5)}


def test_describe_images_pages_with_next_token(
    ecr: Any, new_repository: str, five_images: set[str]
) -> None:
    seen: list[str] = []
    sizes: list[int] = []
    arguments: dict[str, Any] = {"repositoryName": new_repository, "maxResults": 2}
    while True:
        page = ecr.describe_images(**arguments)
        sizes.append(len(page["imageDetails"]))
        seen.extend(detail["imageDigest"] for detail in page["imageDetails"])
        if "nextToken" not in page:
            break
        arguments["nextToken"] = page["nextToken"]
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(five_images)


def test_describe_images_paginator(ecr: Any, new_repository: str, five_images: set[str]) -> None:
    pages = ecr.get_paginator("describe_images").paginate(
        repositoryName=new_repository, PaginationConfig={"PageSize": 2}
    )
    seen = [detail["imageDigest"] for page in pages for detail in page["imageDetails"]]
    assert sorted(seen) == sorted(five_images)


@pytest.mark.parametrize("max_results", [0, 1001])
def test_describe_images_max_results_out_of_range(
    server: EcrdServer, new_repository: str, max_results: int
) -> None:
    with pytest.raises(ClientError) as refused:
        unvalidated_client(server).describe_images(
            repositoryName=new_repository, maxResults=max_results
        )
    assert error_code(refused) == "InvalidParameterException"


# ListImages


def test_list_images_one_entry_per_tag_plus_untagged(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    tagged = digest_of(manifest)
    put_image(ecr, new_repository, manifest, "v1")
    put_image(ecr, new_repository, manifest, "latest")
    untagged = new_image(ecr, new_repository, "untagged")

    def listed(**arguments: Any) -> list[tuple[str, str | None]]:
        ids = ecr.list_images(repositoryName=new_repository, **arguments)["imageIds"]
        return sorted((i["imageDigest"], i.get("imageTag") or "") for i in ids)

    assert listed() == sorted([(tagged, "v1"), (tagged, "latest"), (untagged, "")])
    assert listed(filter={"tagStatus": "TAGGED"}) == [(tagged, "latest"), (tagged, "v1")]
    assert listed(filter={"tagStatus": "UNTAGGED"}) == [(untagged, "")]


def test_list_images_pages_through_the_tags_of_one_image(ecr: Any, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    tags = [f"tag-{n}" for n in range(5)]
    for tag in tags:
        put_image(ecr, new_repository, manifest, tag)
    untagged = new_image(ecr, new_repository, "untagged")
    pages = ecr.get_paginator("list_images").paginate(
        repositoryName=new_repository, PaginationConfig={"PageSize": 2}
    )
    page_list = list(pages)
    entries = [(i["imageDigest"], i.get("imageTag")) for p in page_list for i in p["imageIds"]]
    assert len(page_list) == 3
    assert sorted(entries, key=str) == sorted(
        [(digest_of(manifest), tag) for tag in tags] + [(untagged, None)], key=str
    )


# ListImageReferrers


def _referrer(ecr: Any, repository: str, subject: str, artifact_type: str, body: bytes) -> str:
    ensure_layer(ecr, repository, b"{}")
    ensure_layer(ecr, repository, body)
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor("application/octet-stream", body)],
            "subject": descriptor(OCI_MANIFEST, subject),
        }
    )


def test_list_image_referrers(ecr: Any, new_repository: str) -> None:
    # Given an image, a signature and an SBOM that refer to it
    subject = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, subject, "v1")
    signature = _referrer(ecr, new_repository, subject, "application/vnd.example.sig", b"sig")
    sbom = _referrer(ecr, new_repository, subject, "application/spdx+json", b"sbom")
    put_image(ecr, new_repository, signature)
    put_image(ecr, new_repository, sbom)
    subject_id = {"imageDigest": digest_of(subject)}
    # When the referrers are listed, then each comes with its descriptor fields
    listed = ecr.list_image_referrers(repositoryName=new_repository, subjectId=subject_id)
    by_digest = {referrer["digest"]: referrer for referrer in listed["referrers"]}
    assert set(by_digest) == {digest_of(signature), digest_of(sbom)}
    assert by_digest[digest_of(signature)]["mediaType"] == OCI_MANIFEST
    assert by_digest[digest_of(signature)]["artifactType"] == "application/vnd.example.sig"
    assert by_digest[digest_of(signature)]["size"] == len(signature.encode())
    assert by_digest[digest_of(sbom)]["size"] == len(sbom.encode())
    # When filtered by artifact type, then only that one comes back
    filtered = ecr.list_image_referrers(
        repositoryName=new_repository,
        subjectId=subject_id,
        filter={"artifactTypes": ["application/spdx+json"]},
    )
    assert [referrer["digest"] for referrer in filtered["referrers"]] == [digest_of(sbom)]
    # When paged one at a time, then each referrer comes exactly once
    seen: list[str] = []
    arguments: dict[str, Any] = {"repositoryName": new_repository, "subjectId": subject_id}
    for _ in range(5):
        page = ecr.list_image_referrers(maxResults=1, **arguments)
        assert len(page["referrers"]) <= 1
        seen.extend(referrer["digest"] for referrer in page["referrers"])
        if "nextToken" not in page:
            break
        arguments["nextToken"] = page["nextToken"]
    assert sorted(seen) == sorted([digest_of(signature), digest_of(sbom)])


# The same images through the OCI data plane


def test_put_image_is_pullable_over_v2(ecr: Any, client: httpx.Client, new_repository: str) -> None:
    manifest = image_manifest(ecr, new_repository)
    put_image(ecr, new_repository, manifest, "v1")
    response = client.get(
        f"/v2/{new_repository}/manifests/v1", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    )
    assert response.status_code == 200
    assert response.content == manifest.encode()
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert response.headers["Docker-Content-Digest"] == digest_of(manifest)


def _push_blob_over_v2(client: httpx.Client, repository: str, data: bytes) -> None:
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    finished = client.put(
        started.headers["Location"],
        params={"digest": digest_of(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert finished.status_code == 201, finished.text


def test_image_pushed_over_v2_is_described_and_deleted_through_ecr(
    ecr: Any, client: httpx.Client, new_repository: str
) -> None:
    # Given an image pushed over the OCI data plane
    layer = b"pushed over v2"
    for blob in (DEFAULT_CONFIG, layer):
        _push_blob_over_v2(client, new_repository, blob)
    manifest = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, DEFAULT_CONFIG),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    ).encode()
    pushed = client.put(
        f"/v2/{new_repository}/manifests/v2tag",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert pushed.status_code == 201, pushed.text
    # Then DescribeImages shows it with its tag
    (detail,) = ecr.describe_images(repositoryName=new_repository)["imageDetails"]
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v2tag"]
    # When BatchDeleteImage deletes it, then the data plane no longer serves it
    ecr.batch_delete_image(repositoryName=new_repository, imageIds=[{"imageTag": "v2tag"}])
    gone = client.get(f"/v2/{new_repository}/manifests/v2tag", headers={"Accept": OCI_MANIFEST})
    assert gone.status_code == 404
