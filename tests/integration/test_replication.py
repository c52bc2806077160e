"""Replication to another installation: a second ecrd named in `replication_remotes` gets the
source's pushes over the OCI protocol (skopeo pushes to the source and pulls from it), its
deletes and tag removals with deleteReplication, retries while it is down, and a refusal of
its own policies reported as FAILED."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aws.images_helpers import image_manifest, put_image
from tests.conftest import (
    ACCOUNT_ID,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
)
from tests.integration.conftest import Skopeo
from tests.integration.helpers import layout_blobs
from tests.integration.test_scale_out import skopeo_environment
from tests.oci_layouts import Layout
from tests.waiting import eventually

# The second installation's default region: its /v2/ serves this registry.
REMOTE_REGION = "eu-west-1"
# A destination in the second installation whose key may do nothing there.
REFUSED_REGION = "eu-north-1"


@pytest.fixture(scope="module")
def installations(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EcrdServer, EcrdServer]]:
    """(source, remote): the source replicates to the remote's default registry with the
    remote's root key, and to REFUSED_REGION with a key of a user who has no policy."""
    folder = tmp_path_factory.mktemp("replication-remote")
    remote = EcrdServer(folder / "remote", environment={"ECRD_REGION": REMOTE_REGION})
    remote.start()
    nobody = remote.create_key(ACCOUNT_ID, user="nobody")
    remotes = {
        f"{ACCOUNT_ID}/{REMOTE_REGION}": {
            "url": remote.url,
            "access_key_id": ROOT_ACCESS_KEY_ID,
            "secret_access_key": ROOT_SECRET_ACCESS_KEY,
        },
        f"{ACCOUNT_ID}/{REFUSED_REGION}": {
            "url": remote.url,
            "access_key_id": nobody.access_key_id,
            "secret_access_key": nobody.secret_access_key,
        },
    }
    # Two workers: each must read the remote's secret (it reaches them through the settings
    # handed over, where a secret is masked unless written back).
    source = EcrdServer(
        folder / "source",
        extra_args=["--workers", "2"],
        environment={
            "ECRD_REPLICATION_REMOTES": json.dumps(remotes),
            "ECRD_REPLICATION_INTERVAL_SECONDS": "0.5",
        },
    )
    source.start()
    yield source, remote
    source.stop()
    remote.stop()


def statuses(ecr: Any, repository: str, digest: str) -> list[dict[str, Any]]:
    answer = ecr.describe_image_replication_status(
        repositoryName=repository, imageId={"imageDigest": digest}
    )
    return list(answer["replicationStatuses"])


def settled(found: list[dict[str, Any]]) -> bool:
    return bool(found) and all(item["status"] != "IN_PROGRESS" for item in found)


def remote_tags(remote: EcrdServer, repository: str) -> list[str]:
    ecr = remote.ecr(region_name=REMOTE_REGION)
    try:
        images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    except ecr.exceptions.RepositoryNotFoundException:
        return []
    return sorted(tag for image in images for tag in image.get("imageTags", []))


def test_pushes_reach_the_other_installation_and_deletes_follow(
    installations: tuple[EcrdServer, EcrdServer],
    tmp_path: Path,
    containers_config: dict[str, Path],
) -> None:
    source, remote = installations
    ecr = source.ecr()
    ecr.put_replication_configuration(
        replicationConfiguration={
            "rules": [
                {
                    "destinations": [{"registryId": ACCOUNT_ID, "region": REMOTE_REGION}],
                    "repositoryFilters": [{"filter": "remote", "filterType": "PREFIX_MATCH"}],
                    "deleteReplication": {"enabled": True},
                }
            ]
        }
    )
    # given an image of 3 MiB pushed to the source by skopeo, under two tags
    layout = Layout(tmp_path / "image")
    image = layout.add_image(layer_bytes=3 * 1024 * 1024, seed=uuid.uuid4().hex)
    layout.tag(image, "v1")
    digest = image.digest
    repository = f"remote/{uuid.uuid4().hex[:8]}"
    to_source = skopeo_environment(
        [source], source.registry_password(), tmp_path, containers_config
    )
    Skopeo(source, containers_config["policy"], to_source).push(layout.root, "v1", repository, "v1")
    Skopeo(source, containers_config["policy"], to_source).push(layout.root, "v1", repository, "v2")
    # then its replication to the other installation completes
    found = eventually(lambda: statuses(ecr, repository, digest), settled)
    assert found == [{"region": REMOTE_REGION, "registryId": ACCOUNT_ID, "status": "COMPLETE"}]
    eventually(
        lambda: remote_tags(remote, repository), lambda tags: tags == ["v1", "v2"], seconds=60
    )
    # and skopeo pulls it from there, blob for blob
    to_remote = skopeo_environment(
        [remote], remote.registry_password(), tmp_path, containers_config
    )
    copy = tmp_path / "copy"
    Skopeo(remote, containers_config["policy"], to_remote).pull(repository, "v2", copy, "v2")
    assert layout_blobs(copy) == layout_blobs(layout.root)
    # a tag removed in the source goes there too, the image stays
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    eventually(lambda: remote_tags(remote, repository), lambda tags: tags == ["v2"])
    # and the image deleted in the source is deleted there
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])
    eventually(
        lambda: remote.ecr(region_name=REMOTE_REGION).describe_images(repositoryName=repository)[
            "imageDetails"
        ],
        lambda images: images == [],
    )


def test_an_installation_out_of_reach_is_retried_until_it_is_back(
    installations: tuple[EcrdServer, EcrdServer],
) -> None:
    source, remote = installations
    ecr = source.ecr()
    ecr.put_replication_configuration(
        replicationConfiguration={
            "rules": [{"destinations": [{"registryId": ACCOUNT_ID, "region": REMOTE_REGION}]}]
        }
    )
    repository = f"retried/{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=repository)
    remote.stop()
    try:
        manifest = _put_image(ecr, repository, "v1")
        digest = ecr.describe_images(repositoryName=repository)["imageDetails"][0]["imageDigest"]
        # while the other installation is down, the replication waits for another attempt
        attempts = "SELECT attempts, failure_code FROM replications WHERE digest = :digest"
        tried = eventually(
            lambda: source.metadata_query(attempts, digest=digest),
            lambda rows: bool(rows) and rows[0][0] >= 1,
        )
        assert tried[0][1] == "DESTINATION_UNAVAILABLE"
        assert statuses(ecr, repository, digest)[0]["status"] == "IN_PROGRESS"
    finally:
        remote.start()
    # and once it is back, the image arrives
    found = eventually(lambda: statuses(ecr, repository, digest), settled)
    assert found[0]["status"] == "COMPLETE"
    got = remote.ecr(region_name=REMOTE_REGION).batch_get_image(
        repositoryName=repository, imageIds=[{"imageTag": "v1"}]
    )
    assert got["images"][0]["imageManifest"] == manifest


def test_a_key_the_other_installation_refuses_fails_the_replication(
    installations: tuple[EcrdServer, EcrdServer],
) -> None:
    source, remote = installations
    ecr = source.ecr()
    ecr.put_replication_configuration(
        replicationConfiguration={
            "rules": [{"destinations": [{"registryId": ACCOUNT_ID, "region": REFUSED_REGION}]}]
        }
    )
    repository = f"refused/{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=repository)
    _put_image(ecr, repository, "v1")
    digest = ecr.describe_images(repositoryName=repository)["imageDetails"][0]["imageDigest"]
    found = eventually(lambda: statuses(ecr, repository, digest), settled, seconds=30)
    assert found == [
        {
            "region": REFUSED_REGION,
            "registryId": ACCOUNT_ID,
            "status": "FAILED",
            "failureCode": "DESTINATION_REFUSED",
        }
    ]
    assert remote_tags(remote, repository) == []


def test_another_account_may_not_use_the_remotes_key(
    installations: tuple[EcrdServer, EcrdServer],
) -> None:
    # given the source installation's other account, whose rules name the same destination
    source, remote = installations
    other = source.ecr_as(source.create_key("666677778888"))
    other.put_replication_configuration(
        replicationConfiguration={
            "rules": [{"destinations": [{"registryId": ACCOUNT_ID, "region": REMOTE_REGION}]}]
        }
    )
    repository = f"tenant/{uuid.uuid4().hex[:8]}"
    other.create_repository(repositoryName=repository)
    _put_image(other, repository, "v1")
    digest = other.describe_images(repositoryName=repository)["imageDetails"][0]["imageDigest"]
    # then the remote's key (for the destination's own account) is not used for it
    found = eventually(lambda: statuses(other, repository, digest), settled)
    assert [(item["status"], item.get("failureCode")) for item in found] == [
        ("FAILED", "ACCESS_DENIED")
    ]
    assert remote_tags(remote, repository) == []


def _put_image(ecr: Any, repository: str, tag: str) -> str:
    """A one-layer image put through the API; its manifest."""
    manifest = image_manifest(ecr, repository, layers=[f"{repository} {tag}".encode()])
    put_image(ecr, repository, manifest, tag)
    return manifest
