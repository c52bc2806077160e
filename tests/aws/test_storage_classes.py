"""ECR's archive storage class against the real server: UpdateImageStorageClass, the image
status in DescribeImages, ListImages and ListImageReferrers and their filters, BatchGetImage
and the /v2/ pull path refusing archived images, and a push restoring one at once.

What the ECR user guide says and these tests hold ecrd to: an archived image cannot be pulled
("Requests to pull the archived image will fail with a 404 error") but is still described and
listed with status ARCHIVED; a restore makes it ACTIVATING until it can be pulled again; and
"When you push an image that is currently archived, that image will be immediately restored".
Describe and list filters default to ACTIVE (the API reference: "If not specified, only
images with ACTIVE status are returned").
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT_ID, ecr_client
from tests.aws.images_helpers import (
    OCI_EMPTY,
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

# Short, so that a restore can be watched to its end; long enough to see it under way on a
# loaded machine.
RESTORE_SECONDS = 3
# A restore's end as a reader sees it: the restore time and some slack, never unbounded.
RESTORE_WAIT_SECONDS = RESTORE_SECONDS + 15


@pytest.fixture(scope="module")
def archive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("archive") / "data",
        environment={"ECRD_ARCHIVE_RESTORE_SECONDS": str(RESTORE_SECONDS)},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(archive_server: EcrdServer) -> Any:
    return ecr_client(archive_server)


@pytest.fixture
def loose(archive_server: EcrdServer) -> Any:
    """A client that sends what it is given, so the server's own checks are reached."""
    return ecr_client(archive_server, validate=False)


@pytest.fixture
def v2(archive_server: EcrdServer) -> Iterator[httpx.Client]:
    with archive_server.http() as http:
        yield http


@pytest.fixture
def repository(ecr: Any) -> str:
    name = f"archive/{uuid.uuid4().hex[:12]}"
    ecr.create_repository(repositoryName=name)
    return name


def _change(ecr: Any, repository: str, image_id: dict[str, str], target: str) -> dict[str, Any]:
    answer: dict[str, Any] = ecr.update_image_storage_class(
        repositoryName=repository, imageId=image_id, targetStorageClass=target
    )
    return answer


def _detail(ecr: Any, repository: str, digest: str) -> dict[str, Any]:
    (detail,) = ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])[
        "imageDetails"
    ]
    return dict(detail)


def _wait_until_active(ecr: Any, repository: str, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + RESTORE_WAIT_SECONDS
    while True:
        detail = _detail(ecr, repository, digest)
        if detail["imageStatus"] == "ACTIVE" or time.monotonic() > deadline:
            return detail
        time.sleep(0.2)


def _refused(call: Any, **arguments: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**arguments)
    return error_code(refused), str(refused.value.response["Error"]["Message"])


# The state machine


def test_archive_then_restore_goes_archived_activating_active(ecr: Any, repository: str) -> None:
    # Given an image in STANDARD
    digest = new_image(ecr, repository, "state machine", "v1")
    assert _detail(ecr, repository, digest)["imageStatus"] == "ACTIVE"
    started = datetime.now(UTC)
    # When it is archived, then the answer and DescribeImages say ARCHIVED, with the time
    archived = _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")
    assert archived["imageStatus"] == "ARCHIVED"
    assert archived["registryId"] == ACCOUNT_ID
    assert archived["repositoryName"] == repository
    assert archived["imageId"] == {"imageDigest": digest, "imageTag": "v1"}
    detail = _detail(ecr, repository, digest)
    assert detail["imageStatus"] == "ARCHIVED"
    assert abs(detail["lastArchivedAt"] - started) < timedelta(minutes=1)
    assert "lastActivatedAt" not in detail
    # When it is restored to STANDARD, then it is ACTIVATING (not restored yet) ...
    restoring = time.monotonic()
    restored = _change(ecr, repository, {"imageDigest": digest}, "STANDARD")
    assert restored["imageStatus"] == "ACTIVATING"
    assert restored["imageId"] == {"imageDigest": digest}
    detail = _detail(ecr, repository, digest)
    assert detail["imageStatus"] == "ACTIVATING"
    assert "lastActivatedAt" not in detail
    # ... and ACTIVE once the restore time has passed, with when it became so
    detail = _wait_until_active(ecr, repository, digest)
    assert detail["imageStatus"] == "ACTIVE"
    assert time.monotonic() - restoring >= RESTORE_SECONDS - 0.5
    assert detail["lastActivatedAt"] > detail["lastArchivedAt"]
    assert detail["lastArchivedAt"] == _detail(ecr, repository, digest)["lastArchivedAt"]
    # And it can be archived again
    assert _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")["imageStatus"] == "ARCHIVED"


def test_a_restore_with_no_restore_time_is_active_at_once(tmp_path: Path) -> None:
    instance = EcrdServer(tmp_path / "data", environment={"ECRD_ARCHIVE_RESTORE_SECONDS": "0"})
    instance.start()
    try:
        ecr = ecr_client(instance)
        ecr.create_repository(repositoryName="instant/restore")
        digest = new_image(ecr, "instant/restore", "instant", "v1")
        _change(ecr, "instant/restore", {"imageTag": "v1"}, "ARCHIVE")
        restored = _change(ecr, "instant/restore", {"imageTag": "v1"}, "STANDARD")
        assert restored["imageStatus"] == "ACTIVE"
        detail = _detail(ecr, "instant/restore", digest)
        assert detail["imageStatus"] == "ACTIVE"
        assert "lastActivatedAt" in detail
    finally:
        instance.stop()


# Errors


def test_a_missing_repository_is_repository_not_found(ecr: Any) -> None:
    code, _ = _refused(
        ecr.update_image_storage_class,
        repositoryName="archive/never-made",
        imageId={"imageTag": "v1"},
        targetStorageClass="ARCHIVE",
    )
    assert code == "RepositoryNotFoundException"


@pytest.mark.parametrize(
    "image_id",
    [
        {"imageTag": "nope"},
        {"imageDigest": digest_of(b"never pushed")},
        {"imageTag": "v1", "imageDigest": digest_of(b"another image")},
    ],
    ids=["tag", "digest", "tag-and-other-digest"],
)
def test_an_image_id_naming_no_image_is_image_not_found(
    ecr: Any, repository: str, image_id: dict[str, str]
) -> None:
    new_image(ecr, repository, "present", "v1")
    code, message = _refused(
        ecr.update_image_storage_class,
        repositoryName=repository,
        imageId=image_id,
        targetStorageClass="ARCHIVE",
    )
    assert code == "ImageNotFoundException"
    assert repository in message


@pytest.mark.parametrize(
    ("image_id", "target"),
    [
        ({}, "ARCHIVE"),
        ({"imageDigest": "sha256:not-hex"}, "ARCHIVE"),
        ({"imageTag": "v1"}, "GLACIER"),
        ({"imageTag": "v1"}, None),
    ],
    ids=["no-tag-or-digest", "malformed-digest", "unknown-class", "no-class"],
)
def test_bad_parameters_are_invalid_parameter(
    loose: Any, ecr: Any, repository: str, image_id: dict[str, str], target: str | None
) -> None:
    digest = new_image(ecr, repository, "untouched", "v1")
    arguments: dict[str, Any] = {"repositoryName": repository, "imageId": image_id}
    if target is not None:
        arguments["targetStorageClass"] = target
    code, _ = _refused(loose.update_image_storage_class, **arguments)
    assert code == "InvalidParameterException"
    assert _detail(ecr, repository, digest)["imageStatus"] == "ACTIVE"


def test_changes_the_image_state_does_not_allow_are_not_supported(
    ecr: Any, repository: str
) -> None:
    digest = new_image(ecr, repository, "refusals", "v1")
    image_id = {"imageDigest": digest}

    def refused(target: str) -> str:
        code, message = _refused(
            ecr.update_image_storage_class,
            repositoryName=repository,
            imageId=image_id,
            targetStorageClass=target,
        )
        assert code == "ImageStorageClassUpdateNotSupportedException", message
        return message

    # An ACTIVE image is in STANDARD already
    assert "STANDARD" in refused("STANDARD")
    # An archived image is in ARCHIVE already
    _change(ecr, repository, image_id, "ARCHIVE")
    assert "archived" in refused("ARCHIVE")
    # An image being restored can be neither restored nor archived until it is ACTIVE
    _change(ecr, repository, image_id, "STANDARD")
    assert "restored" in refused("STANDARD")
    assert "restored" in refused("ARCHIVE")
    assert _detail(ecr, repository, digest)["imageStatus"] == "ACTIVATING"


def test_an_image_a_manifest_list_serves_is_archived_only_after_the_list(
    ecr: Any, repository: str
) -> None:
    # Given a manifest list over two images
    children = [image_manifest(ecr, repository, layers=[f"arch {n}".encode()]) for n in (1, 2)]
    for child in children:
        put_image(ecr, repository, child)
    index = index_manifest(children)
    put_image(ecr, repository, index, "multi")
    child_id = {"imageDigest": digest_of(children[0])}
    # Then one of its images cannot be archived under the list
    code, message = _refused(
        ecr.update_image_storage_class,
        repositoryName=repository,
        imageId=child_id,
        targetStorageClass="ARCHIVE",
    )
    assert code == "ImageStorageClassUpdateNotSupportedException"
    assert digest_of(index) in message
    # When the list is archived, then its images may be
    assert _change(ecr, repository, {"imageTag": "multi"}, "ARCHIVE")["imageStatus"] == "ARCHIVED"
    assert _change(ecr, repository, child_id, "ARCHIVE")["imageStatus"] == "ARCHIVED"
    # And the list is restored only once the images it lists are no longer archived
    code, message = _refused(
        ecr.update_image_storage_class,
        repositoryName=repository,
        imageId={"imageTag": "multi"},
        targetStorageClass="STANDARD",
    )
    assert code == "ImageStorageClassUpdateNotSupportedException"
    assert digest_of(children[0]) in message
    assert _change(ecr, repository, child_id, "STANDARD")["imageStatus"] == "ACTIVATING"
    assert _change(ecr, repository, {"imageTag": "multi"}, "STANDARD")["imageStatus"] == (
        "ACTIVATING"
    )


# Describe and list


def test_describe_and_list_images_filter_on_image_status(ecr: Any, repository: str) -> None:
    # Given an active, an archived and a restoring image
    active = new_image(ecr, repository, "stays active", "active")
    archived = new_image(ecr, repository, "archived", "archived")
    restoring = new_image(ecr, repository, "restoring", "restoring")
    _change(ecr, repository, {"imageTag": "archived"}, "ARCHIVE")
    _change(ecr, repository, {"imageTag": "restoring"}, "ARCHIVE")
    _change(ecr, repository, {"imageTag": "restoring"}, "STANDARD")

    def described(**extra: Any) -> dict[str, str]:
        details = ecr.describe_images(repositoryName=repository, **extra)["imageDetails"]
        return {detail["imageDigest"]: detail["imageStatus"] for detail in details}

    def listed(**extra: Any) -> set[str]:
        ids = ecr.list_images(repositoryName=repository, **extra)["imageIds"]
        return {image_id["imageDigest"] for image_id in ids}

    # Then without a filter only the active one is there, as ECR documents
    assert described() == {active: "ACTIVE"}
    assert listed() == {active}
    # And each status filter gives its images, ANY all of them
    assert described(filter={"imageStatus": "ARCHIVED"}) == {archived: "ARCHIVED"}
    assert described(filter={"imageStatus": "ACTIVATING"}) == {restoring: "ACTIVATING"}
    assert described(filter={"imageStatus": "ANY"}) == {
        active: "ACTIVE",
        archived: "ARCHIVED",
        restoring: "ACTIVATING",
    }
    assert listed(filter={"imageStatus": "ARCHIVED"}) == {archived}
    assert listed(filter={"imageStatus": "ACTIVATING", "tagStatus": "TAGGED"}) == {restoring}
    assert listed(filter={"imageStatus": "ANY"}) == {active, archived, restoring}
    assert described(filter={"imageStatus": "ARCHIVED", "tagStatus": "UNTAGGED"}) == {}
    # When the restore ends, then the restored image counts as ACTIVE in the filters too
    _wait_until_active(ecr, repository, restoring)
    assert described() == {active: "ACTIVE", restoring: "ACTIVE"}
    assert listed(filter={"imageStatus": "ACTIVATING"}) == set()


def test_describe_images_pages_within_a_status(ecr: Any, repository: str) -> None:
    archived = set()
    for number in range(3):
        digest = new_image(ecr, repository, f"paged {number}", f"t{number}")
        _change(ecr, repository, {"imageDigest": digest}, "ARCHIVE")
        archived.add(digest)
    new_image(ecr, repository, "active among them", "active")
    pages = ecr.get_paginator("describe_images").paginate(
        repositoryName=repository,
        filter={"imageStatus": "ARCHIVED"},
        PaginationConfig={"PageSize": 2},
    )
    sizes = []
    seen: set[str] = set()
    for page in pages:
        sizes.append(len(page["imageDetails"]))
        seen.update(detail["imageDigest"] for detail in page["imageDetails"])
    assert sizes == [2, 1]
    assert seen == archived


def test_list_image_referrers_filters_on_artifact_status(
    ecr: Any, v2: httpx.Client, repository: str
) -> None:
    # Given an image with two referrers, one of them archived
    subject = image_manifest(ecr, repository, layers=[b"subject"])
    put_image(ecr, repository, subject, "v1")
    ensure_layer(ecr, repository, b"{}")
    referrers = []
    for kind in ("signature", "sbom"):
        ensure_layer(ecr, repository, kind.encode())
        referrer = encode(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": f"application/vnd.example.{kind}",
                "config": descriptor(OCI_EMPTY, b"{}"),
                "layers": [descriptor("application/octet-stream", kind.encode())],
                "subject": descriptor(OCI_MANIFEST, subject),
            }
        )
        put_image(ecr, repository, referrer)
        referrers.append(digest_of(referrer))
    signature, sbom = referrers
    _change(ecr, repository, {"imageDigest": signature}, "ARCHIVE")

    def listed(**filter_: Any) -> dict[str, str]:
        found = ecr.list_image_referrers(
            repositoryName=repository, subjectId={"imageDigest": digest_of(subject)}, **filter_
        )["referrers"]
        return {referrer["digest"]: referrer["artifactStatus"] for referrer in found}

    # Then only the active one is listed unless the filter asks for others
    assert listed() == {sbom: "ACTIVE"}
    assert listed(filter={"artifactStatus": "ARCHIVED"}) == {signature: "ARCHIVED"}
    assert listed(filter={"artifactStatus": "ANY"}) == {sbom: "ACTIVE", signature: "ARCHIVED"}
    # And the data plane's referrers list only what can be pulled
    index = v2.get(f"/v2/{repository}/referrers/{digest_of(subject)}").json()
    assert [entry["digest"] for entry in index["manifests"]] == [sbom]


def test_an_archived_image_can_be_deleted(ecr: Any, repository: str) -> None:
    digest = new_image(ecr, repository, "deleted archived", "v1")
    _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")
    deleted = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    assert deleted["failures"] == []
    assert deleted["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
    assert (
        ecr.describe_images(repositoryName=repository, filter={"imageStatus": "ANY"})[
            "imageDetails"
        ]
        == []
    )


# Pulls


def test_batch_get_image_refuses_an_archived_or_restoring_image(ecr: Any, repository: str) -> None:
    digest = new_image(ecr, repository, "batch get", "v1")
    _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")

    def fetched() -> dict[str, Any]:
        answer: dict[str, Any] = ecr.batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": "v1"}, {"imageDigest": digest}]
        )
        return answer

    for state in ("ARCHIVED", "ACTIVATING"):
        assert _detail(ecr, repository, digest)["imageStatus"] == state
        answer = fetched()
        assert answer["images"] == []
        assert [(f["imageId"], f["failureCode"]) for f in answer["failures"]] == [
            ({"imageTag": "v1"}, "ImageInaccessible"),
            ({"imageDigest": digest}, "ImageInaccessible"),
        ]
        assert all(failure["failureReason"] for failure in answer["failures"])
        if state == "ARCHIVED":
            _change(ecr, repository, {"imageTag": "v1"}, "STANDARD")
    _wait_until_active(ecr, repository, digest)
    answer = fetched()
    assert answer["failures"] == []
    assert [image["imageId"]["imageDigest"] for image in answer["images"]] == [digest, digest]


def test_the_data_plane_answers_404_for_an_archived_image_until_restored(
    ecr: Any, v2: httpx.Client, repository: str
) -> None:
    # Given an archived image
    manifest = image_manifest(ecr, repository, layers=[b"pulled over v2"])
    put_image(ecr, repository, manifest, "v1")
    digest = digest_of(manifest)
    _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")
    accept = {"Accept": OCI_MANIFEST}
    references = ("v1", digest)

    def answers() -> list[tuple[str, int]]:
        found = []
        for reference in references:
            url = f"/v2/{repository}/manifests/{reference}"
            found.append(("GET", v2.get(url, headers=accept).status_code))
            found.append(("HEAD", v2.head(url, headers=accept).status_code))
        return found

    # Then GET and HEAD by tag and by digest are 404 MANIFEST_UNKNOWN, archived or restoring
    assert answers() == [("GET", 404), ("HEAD", 404)] * 2
    refused = v2.get(f"/v2/{repository}/manifests/v1", headers=accept)
    assert refused.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    _change(ecr, repository, {"imageTag": "v1"}, "STANDARD")
    assert answers() == [("GET", 404), ("HEAD", 404)] * 2
    # And its blobs are still where they were
    config_digest = json.loads(manifest)["config"]["digest"]
    assert v2.get(f"/v2/{repository}/blobs/{config_digest}").status_code == 200
    # When the restore has ended, then it is pulled again
    _wait_until_active(ecr, repository, digest)
    assert answers() == [("GET", 200), ("HEAD", 200)] * 2
    assert v2.get(f"/v2/{repository}/manifests/v1", headers=accept).content == manifest.encode()


# A push restores at once


def test_put_image_of_an_archived_image_restores_it_at_once(ecr: Any, repository: str) -> None:
    manifest = image_manifest(ecr, repository, layers=[b"pushed again"])
    digest = digest_of(manifest)
    put_image(ecr, repository, manifest, "v1")
    _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")
    archived_at = _detail(ecr, repository, digest)["lastArchivedAt"]
    # When the same manifest and tag are put again, then it is no ImageAlreadyExists ...
    image = put_image(ecr, repository, manifest, "v1")
    assert image["imageId"] == {"imageDigest": digest, "imageTag": "v1"}
    # ... and the image is ACTIVE at once, and pulled
    detail = _detail(ecr, repository, digest)
    assert detail["imageStatus"] == "ACTIVE"
    assert detail["lastActivatedAt"] >= archived_at
    fetched = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    assert fetched["failures"] == []
    # And a put once more is ImageAlreadyExists again
    code, _ = _refused(
        ecr.put_image, repositoryName=repository, imageManifest=manifest, imageTag="v1"
    )
    assert code == "ImageAlreadyExistsException"


def test_a_push_over_v2_restores_an_archived_or_restoring_image_at_once(
    ecr: Any, v2: httpx.Client, repository: str
) -> None:
    manifest = image_manifest(ecr, repository, layers=[b"pushed over v2 again"])
    digest = digest_of(manifest)
    put_image(ecr, repository, manifest, "v1")
    url = f"/v2/{repository}/manifests/v1"
    headers = {"Content-Type": OCI_MANIFEST, "Accept": OCI_MANIFEST}
    for restore_first in (False, True):
        _change(ecr, repository, {"imageTag": "v1"}, "ARCHIVE")
        if restore_first:
            _change(ecr, repository, {"imageTag": "v1"}, "STANDARD")
        assert v2.get(url, headers=headers).status_code == 404
        pushed = v2.put(url, content=manifest.encode(), headers=headers)
        assert pushed.status_code == 201, pushed.text
        assert _detail(ecr, repository, digest)["imageStatus"] == "ACTIVE"
        assert v2.get(url, headers=headers).status_code == 200
