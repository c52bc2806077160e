"""Replication through boto3: PutReplicationConfiguration's checks, DescribeRegistry, and the
replication of pushes, deletes and tag removals to other regions and accounts of the same
installation, with DescribeImageReplicationStatus, creation templates and registry policies
as ECR has them."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import random
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ecrd.metadata.database import Database
from ecrd.metadata.jobs import JobStore
from tests.api_errors import expect_error
from tests.aws.images_helpers import (
    digest_of,
    image_manifest,
    index_manifest,
    put_image,
)
from tests.aws.images_helpers import new_image as pushed_image
from tests.conftest import ACCOUNT_ID, EcrdServer
from tests.oci.helpers import push_image, put_manifest
from tests.waiting import eventually

OTHER_ACCOUNT = "333344445555"


@pytest.fixture(scope="module")
def replicating_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server whose replication job also runs twice a second on its own."""
    instance = EcrdServer(
        tmp_path_factory.mktemp("replication") / "data",
        environment={"ECRD_REPLICATION_INTERVAL_SECONDS": "0.5"},
    )
    instance.start()
    yield instance
    instance.stop()


def new_region() -> str:
    return "tt-" + "".join(random.choices(string.ascii_lowercase, k=10)) + "-1"


@pytest.fixture
def source_region() -> str:
    """The test's source registry is in a region of its own: no rules from other tests."""
    return new_region()


@pytest.fixture
def source(replicating_server: EcrdServer, source_region: str) -> Any:
    return replicating_server.ecr(region_name=source_region)


def rule(*destinations: tuple[str, str], **extra: Any) -> dict[str, Any]:
    named = [{"registryId": account, "region": region} for account, region in destinations]
    return {"destinations": named, **extra}


def configure(ecr: Any, *rules: dict[str, Any]) -> None:
    ecr.put_replication_configuration(replicationConfiguration={"rules": list(rules)})


def statuses(ecr: Any, repository: str, image_id: dict[str, str]) -> list[dict[str, Any]]:
    answer = ecr.describe_image_replication_status(repositoryName=repository, imageId=image_id)
    return list(answer["replicationStatuses"])


def settled(found: list[dict[str, Any]]) -> bool:
    return bool(found) and all(item["status"] != "IN_PROGRESS" for item in found)


def new_image(ecr: Any, repository: str, seed: str, tag: str | None = None) -> str:
    """A distinct one-layer image pushed by the API (its repository made when missing)."""
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    return pushed_image(ecr, repository, seed, tag)


def manifest_in(ecr: Any, repository: str, digest: str, **extra: Any) -> str | None:
    answer = ecr.batch_get_image(
        repositoryName=repository, imageIds=[{"imageDigest": digest}], **extra
    )
    images = answer["images"]
    return str(images[0]["imageManifest"]) if images else None


# PutReplicationConfiguration and DescribeRegistry


def test_a_configuration_is_described_and_replaced(source: Any) -> None:
    assert source.describe_registry()["replicationConfiguration"] == {"rules": []}
    rules = [
        rule(
            (ACCOUNT_ID, "eu-west-1"),
            (OTHER_ACCOUNT, "us-west-2"),
            repositoryFilters=[{"filter": "prod", "filterType": "PREFIX_MATCH"}],
            deleteReplication={"enabled": True},
        ),
        rule((ACCOUNT_ID, "ap-south-1")),
    ]
    answer = source.put_replication_configuration(replicationConfiguration={"rules": rules})
    assert answer["replicationConfiguration"]["rules"] == rules
    described = source.describe_registry()
    assert described["registryId"] == ACCOUNT_ID
    assert described["replicationConfiguration"]["rules"] == rules
    # no rules removes replication
    configure(source)
    assert source.describe_registry()["replicationConfiguration"] == {"rules": []}


def test_ecrs_checks_on_a_configuration(
    replicating_server: EcrdServer, source: Any, source_region: str
) -> None:
    unchecked = replicating_server.ecr(region_name=source_region, parameter_validation=False)

    def refused(*rules: dict[str, Any], ecr: Any = source) -> str:
        return expect_error("InvalidParameterException", configure, ecr, *rules)

    assert "source registry" in refused(rule((ACCOUNT_ID, source_region)))
    assert "more than once" in refused(rule((ACCOUNT_ID, "eu-west-1"), (ACCOUNT_ID, "eu-west-1")))
    assert "no destinations" in refused(rule())
    many = [(f"{number:012d}", "eu-west-1") for number in range(1, 27)]
    assert "25" in refused(rule(*many[:13]), rule(*many[13:]))
    # the model's own constraints, sent past boto3's checks
    refused(rule((ACCOUNT_ID, "EU_WEST")), ecr=unchecked)
    bad_filters = [("p", "PREFIX_MATCH"), ("UP", "PREFIX_MATCH"), ("prod", "SUFFIX")]
    for text, kind in bad_filters:
        bad_filter = {"filter": text, "filterType": kind}
        refused(rule((ACCOUNT_ID, "eu-west-1"), repositoryFilters=[bad_filter]), ecr=unchecked)
    # nothing was stored by a refused call
    assert source.describe_registry()["replicationConfiguration"] == {"rules": []}


# Replication within one account, to other regions


def test_a_push_is_replicated_to_each_destination_region(
    replicating_server: EcrdServer, source: Any
) -> None:
    # given rules to the server's default region (the one /v2/ serves) and another
    default, south = "us-east-1", new_region()
    configure(source, rule((ACCOUNT_ID, default), (ACCOUNT_ID, south)))
    name = f"team/app-{new_region()}"
    source.create_repository(repositoryName=name)
    manifest = image_manifest(source, name, layers=[b"replicated layer"])
    put_image(source, name, manifest, "v1")
    digest = digest_of(manifest)
    found = eventually(lambda: statuses(source, name, {"imageTag": "v1"}), settled)
    assert sorted(found, key=lambda status: status["region"]) == sorted(
        [
            {"region": default, "registryId": ACCOUNT_ID, "status": "COMPLETE"},
            {"region": south, "registryId": ACCOUNT_ID, "status": "COMPLETE"},
        ],
        key=lambda status: status["region"],
    )
    layer = json.loads(manifest)["layers"][0]["digest"]
    for region in (default, south):
        destination = replicating_server.ecr(region_name=region)
        # the same bytes under the same digest and tag, in a repository of the same name
        assert manifest_in(destination, name, digest) == manifest
        images = destination.describe_images(repositoryName=name)["imageDetails"]
        assert [(i["imageDigest"], i["imageTags"]) for i in images] == [(digest, ["v1"])]
        layers = destination.batch_check_layer_availability(
            repositoryName=name, layerDigests=[layer]
        )["layers"]
        assert [item["layerAvailability"] for item in layers] == ["AVAILABLE"]
    # and a client pulls it over /v2/ from the default region's registry
    with replicating_server.http() as client:
        pulled = client.get(
            f"/v2/{name}/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert pulled.status_code == 200
        assert pulled.content == manifest.encode()
        assert pulled.headers["Docker-Content-Digest"] == digest
        assert client.get(f"/v2/{name}/blobs/{layer}").content == b"replicated layer"


def test_only_repositories_a_filter_covers_are_replicated(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    filters = [{"filter": "prod", "filterType": "PREFIX_MATCH"}]
    configure(source, rule((ACCOUNT_ID, west), repositoryFilters=filters))
    covered = new_image(source, "prod-api", "covered", "v1")
    left = new_image(source, "dev/api", "left", "v1")
    destination = replicating_server.ecr(region_name=west)
    eventually(lambda: statuses(source, "prod-api", {"imageDigest": covered}), settled)
    assert manifest_in(destination, "prod-api", covered) is not None
    # a repository the filter does not cover has no status and no replica
    assert statuses(source, "dev/api", {"imageDigest": left}) == []
    expect_error(
        "RepositoryNotFoundException", destination.describe_images, repositoryName="dev/api"
    )


def test_an_image_pushed_before_the_rule_is_not_replicated(source: Any) -> None:
    old = new_image(source, "before/rule", "old", "v1")
    configure(source, rule((ACCOUNT_ID, new_region())))
    assert statuses(source, "before/rule", {"imageDigest": old}) == []


def test_an_index_is_replicated_with_the_images_it_lists(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    configure(source, rule((ACCOUNT_ID, west)))
    source.create_repository(repositoryName="multi/arch")
    children = [
        image_manifest(source, "multi/arch", layers=[f"layer {n}".encode()]) for n in range(2)
    ]
    for child in children:
        put_image(source, "multi/arch", child)
    index = index_manifest(children)
    put_image(source, "multi/arch", index, "latest")
    eventually(lambda: statuses(source, "multi/arch", {"imageTag": "latest"}), settled)
    destination = replicating_server.ecr(region_name=west)
    assert manifest_in(destination, "multi/arch", digest_of(index)) == index
    for child in children:
        assert manifest_in(destination, "multi/arch", digest_of(child)) == child


def test_a_replica_is_not_replicated_again(replicating_server: EcrdServer, source: Any) -> None:
    # given rules source -> west and west -> south
    west, south = new_region(), new_region()
    configure(source, rule((ACCOUNT_ID, west)))
    configure(replicating_server.ecr(region_name=west), rule((ACCOUNT_ID, south)))
    digest = new_image(source, "chain/app", "chained", "v1")
    eventually(lambda: statuses(source, "chain/app", {"imageDigest": digest}), settled)
    west_ecr = replicating_server.ecr(region_name=west)
    assert manifest_in(west_ecr, "chain/app", digest) is not None
    # then the replica in west is not sent on (ECR replicates a push once)
    assert statuses(west_ecr, "chain/app", {"imageDigest": digest}) == []
    expect_error(
        "RepositoryNotFoundException",
        replicating_server.ecr(region_name=south).describe_images,
        repositoryName="chain/app",
    )


def test_the_destination_repository_is_made_through_its_replication_template(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    destination = replicating_server.ecr(region_name=west)
    destination.create_repository_creation_template(
        prefix="tmpl",
        appliedFor=["REPLICATION"],
        imageTagMutability="IMMUTABLE",
        resourceTags=[{"Key": "made-by", "Value": "replication"}],
    )
    destination.create_repository_creation_template(
        prefix="ROOT", appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE"
    )
    configure(source, rule((ACCOUNT_ID, west)))
    templated = new_image(source, "tmpl/app", "templated", "v1")
    plain = new_image(source, "plain/app", "plain", "v1")
    eventually(lambda: statuses(source, "tmpl/app", {"imageDigest": templated}), settled)
    eventually(lambda: statuses(source, "plain/app", {"imageDigest": plain}), settled)
    made = destination.describe_repositories(repositoryNames=["tmpl/app"])["repositories"][0]
    assert made["imageTagMutability"] == "IMMUTABLE"
    tags = destination.list_tags_for_resource(resourceArn=made["repositoryArn"])["tags"]
    assert tags == [{"Key": "made-by", "Value": "replication"}]
    # a name no REPLICATION template covers gets ECR's defaults (not the CREATE_ON_PUSH one)
    other = destination.describe_repositories(repositoryNames=["plain/app"])["repositories"][0]
    assert other["imageTagMutability"] == "MUTABLE"


def test_an_immutable_tag_in_the_destination_fails_with_a_code(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    destination = replicating_server.ecr(region_name=west)
    destination.create_repository(repositoryName="fixed/tag", imageTagMutability="IMMUTABLE")
    new_image(destination, "fixed/tag", "the destination's own", "v1")
    configure(source, rule((ACCOUNT_ID, west)))
    digest = new_image(source, "fixed/tag", "the source's", "v1")
    found = eventually(lambda: statuses(source, "fixed/tag", {"imageDigest": digest}), settled)
    failed = {"status": "FAILED", "failureCode": "TAG_IMMUTABLE"}
    assert found == [{"region": west, "registryId": ACCOUNT_ID, **failed}]


# Deletes and tag removals


def test_without_delete_replication_a_delete_stays_in_the_source(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    configure(source, rule((ACCOUNT_ID, west)))
    digest = new_image(source, "keep/app", "kept", "v1")
    eventually(lambda: statuses(source, "keep/app", {"imageDigest": digest}), settled)
    source.batch_delete_image(repositoryName="keep/app", imageIds=[{"imageDigest": digest}])
    # a later push is replicated, so the job has run past the delete
    later = new_image(source, "keep/app", "later", "v2")
    eventually(lambda: statuses(source, "keep/app", {"imageDigest": later}), settled)
    destination = replicating_server.ecr(region_name=west)
    assert manifest_in(destination, "keep/app", digest) is not None


def test_with_delete_replication_deletes_and_tag_removals_follow(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    configure(source, rule((ACCOUNT_ID, west), deleteReplication={"enabled": True}))
    source.create_repository(repositoryName="follow/app")
    manifest = image_manifest(source, "follow/app", layers=[b"followed"])
    for tag in ("v1", "v2", "latest"):
        put_image(source, "follow/app", manifest, tag)
    digest = digest_of(manifest)
    destination = replicating_server.ecr(region_name=west)

    def destination_tags() -> list[str]:
        images = destination.describe_images(repositoryName="follow/app")["imageDetails"]
        return sorted(images[0].get("imageTags", [])) if images else []

    eventually(destination_tags, lambda tags: tags == ["latest", "v1", "v2"])
    # a tag removed in the source (the image keeps others) goes in the destination
    source.batch_delete_image(repositoryName="follow/app", imageIds=[{"imageTag": "v1"}])
    eventually(destination_tags, lambda tags: tags == ["latest", "v2"])
    # the image deleted in the source is deleted in the destination
    source.batch_delete_image(repositoryName="follow/app", imageIds=[{"imageDigest": digest}])
    eventually(
        lambda: destination.describe_images(repositoryName="follow/app")["imageDetails"],
        lambda images: images == [],
    )
    expect_error(
        "ImageNotFoundException",
        statuses,
        source,
        "follow/app",
        {"imageDigest": digest},
    )


def test_a_replica_stays_whole_when_the_source_repository_goes(
    replicating_server: EcrdServer, source: Any
) -> None:
    # the destination is the default region, so that /v2/ serves the replica
    configure(source, rule((ACCOUNT_ID, "us-east-1"), deleteReplication={"enabled": True}))
    name = f"gone/source-{new_region()}"
    source.create_repository(repositoryName=name)
    manifest = image_manifest(source, name, layers=[b"outlives its source"])
    put_image(source, name, manifest, "v1")
    eventually(lambda: statuses(source, name, {"imageTag": "v1"}), settled)
    source.delete_repository(repositoryName=name, force=True)
    # a collection with no grace window keeps what the replica links
    collected = replicating_server.ecrd_command("gc", "--grace", "0", "--json")
    assert collected.returncode == 0, collected.stderr
    destination = replicating_server.ecr()
    assert manifest_in(destination, name, digest_of(manifest)) == manifest
    layer = json.loads(manifest)["layers"][0]["digest"]
    with replicating_server.http() as client:
        assert client.get(f"/v2/{name}/blobs/{layer}").content == b"outlives its source"


def test_pushes_and_deletes_through_v2_are_replicated(replicating_server: EcrdServer) -> None:
    # given the default registry (the one /v2/ serves) replicating with deletes
    default = replicating_server.ecr()
    west = new_region()
    configure(default, rule((ACCOUNT_ID, west), deleteReplication={"enabled": True}))
    destination = replicating_server.ecr(region_name=west)
    try:
        with replicating_server.http() as client:
            payload, digest = push_image(client, "v2/pushed", "v1", layer=b"through v2")
            assert put_manifest(client, "v2/pushed", "v2", payload).status_code == 201

            def tags() -> list[str]:
                try:
                    found = destination.describe_images(repositoryName="v2/pushed")
                except destination.exceptions.RepositoryNotFoundException:
                    return []
                images = found["imageDetails"]
                return sorted(images[0].get("imageTags", [])) if images else []

            eventually(tags, lambda found: found == ["v1", "v2"])
            # a tag deleted through /v2/ goes in the destination, the image stays
            assert client.delete("/v2/v2/pushed/manifests/v1").status_code == 202
            eventually(tags, lambda found: found == ["v2"])
            # the manifest deleted by digest goes too
            assert client.delete(f"/v2/v2/pushed/manifests/{digest}").status_code == 202
            eventually(
                lambda: destination.describe_images(repositoryName="v2/pushed")["imageDetails"],
                lambda images: images == [],
            )
    finally:
        configure(default)


# Across accounts


def _registry_policy(source_account: str, actions: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "replication",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{source_account}:root"},
                    "Action": actions,
                    "Resource": "*",
                }
            ],
        }
    )


def test_across_accounts_the_destination_registry_policy_decides(
    replicating_server: EcrdServer, source: Any
) -> None:
    west = new_region()
    other = replicating_server.ecr_as(
        replicating_server.create_key(OTHER_ACCOUNT), region_name=west
    )
    configure(source, rule((OTHER_ACCOUNT, west)))
    # without a registry policy in the destination account, nothing is replicated
    denied = new_image(source, "cross/app", "denied", "v1")
    found = eventually(lambda: statuses(source, "cross/app", {"imageDigest": denied}), settled)
    failed = {"status": "FAILED", "failureCode": "ACCESS_DENIED"}
    assert found == [{"region": west, "registryId": OTHER_ACCOUNT, **failed}]
    expect_error("RepositoryNotFoundException", other.describe_images, repositoryName="cross/app")
    # ecr:ReplicateImage alone does not let the source create the repository
    other.put_registry_policy(policyText=_registry_policy(ACCOUNT_ID, ["ecr:ReplicateImage"]))
    alone = new_image(source, "cross/app", "replicate only", "v2")
    found = eventually(lambda: statuses(source, "cross/app", {"imageDigest": alone}), settled)
    assert found[0]["failureCode"] == "ACCESS_DENIED"
    # with ecr:CreateRepository too, the image arrives in the other account
    other.put_registry_policy(
        policyText=_registry_policy(ACCOUNT_ID, ["ecr:ReplicateImage", "ecr:CreateRepository"])
    )
    allowed = new_image(source, "cross/app", "allowed", "v3")
    found = eventually(lambda: statuses(source, "cross/app", {"imageDigest": allowed}), settled)
    assert found == [{"region": west, "registryId": OTHER_ACCOUNT, "status": "COMPLETE"}]
    assert manifest_in(other, "cross/app", allowed) is not None
    # the repository exists now: ecr:ReplicateImage alone lets later images in
    other.put_registry_policy(policyText=_registry_policy(ACCOUNT_ID, ["ecr:ReplicateImage"]))
    later = new_image(source, "cross/app", "later", "v4")
    found = eventually(lambda: statuses(source, "cross/app", {"imageDigest": later}), settled)
    assert found[0]["status"] == "COMPLETE"
    # a policy granting another account does not let this one in
    other.put_registry_policy(
        policyText=_registry_policy("999988887777", ["ecr:ReplicateImage", "ecr:CreateRepository"])
    )
    stranger = new_image(source, "cross/app", "stranger", "v5")
    found = eventually(lambda: statuses(source, "cross/app", {"imageDigest": stranger}), settled)
    assert found[0]["failureCode"] == "ACCESS_DENIED"
    assert manifest_in(other, "cross/app", stranger) is None


def test_describe_image_replication_status_errors(source: Any) -> None:
    expect_error(
        "RepositoryNotFoundException",
        statuses,
        source,
        "no/such/repository",
        {"imageTag": "v1"},
    )
    source.create_repository(repositoryName="status/errors")
    expect_error("ImageNotFoundException", statuses, source, "status/errors", {"imageTag": "v1"})
    expect_error(
        "InvalidParameterException",
        statuses,
        source,
        "status/errors",
        {"imageDigest": "sha256:not-hex"},
    )


def test_replication_runs_and_its_queue_are_metrics(
    replicating_server: EcrdServer, source: Any
) -> None:
    configure(source, rule((ACCOUNT_ID, new_region())))
    digest = new_image(source, "metrics/app", "measured", "v1")
    eventually(lambda: statuses(source, "metrics/app", {"imageDigest": digest}), settled)
    text = httpx.get(f"{replicating_server.url}/metrics", timeout=30).text
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    replicated = 'ecrd_background_job_items_total{item="replicated",job="replication"}'
    assert values[replicated] >= 1
    assert values["ecrd_replications_queued"] == 0
    assert values["ecrd_replication_lag_seconds"] == 0


# Backfills


def backfill_results(ecr: Any, backfill_id: str, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = ecr.describe_replication_backfill_results(
        replicationBackfillId=backfill_id, **extra
    )
    return answer


def ended(answer: dict[str, Any]) -> bool:
    return answer["status"] in ("COMPLETE", "FAILED", "STOPPED")


def test_a_backfill_replicates_images_pushed_before_the_rule(
    replicating_server: EcrdServer, source: Any
) -> None:
    # given images pushed before any rule: two tags on one, none on another, an index with
    # its images, and a repository the rule will not cover
    west = new_region()
    tagged = new_image(source, "old/app", "tagged", "v1")
    put_image(source, "old/app", manifest_in(source, "old/app", tagged) or "", "v2")
    untagged = new_image(source, "old/app", "untagged")
    children = [image_manifest(source, "old/app", layers=[f"arch {n}".encode()]) for n in range(2)]
    for child in children:
        put_image(source, "old/app", child)
    # one of the index's images has a tag of its own: it is a result of its own too
    put_image(source, "old/app", children[0], "amd64")
    index = index_manifest(children)
    put_image(source, "old/app", index, "multi")
    new_image(source, "skipped/app", "not covered", "v1")
    filters = [{"filter": "old", "filterType": "PREFIX_MATCH"}]
    configure(source, rule((ACCOUNT_ID, west), repositoryFilters=filters))
    assert statuses(source, "old/app", {"imageDigest": tagged}) == []
    # when a backfill to the destination runs
    started = source.start_replication_backfill(
        destination={"region": west, "registryId": ACCOUNT_ID}
    )
    assert started["status"] == "PREPARING"
    assert started["destination"] == {"region": west, "registryId": ACCOUNT_ID}
    assert started["registryId"] == ACCOUNT_ID
    backfill_id = started["replicationBackfillId"]
    done = eventually(lambda: backfill_results(source, backfill_id), ended)
    # then every image and tag of the covered repository is a result, COMPLETE
    assert done["status"] == "COMPLETE"
    expected = sorted(
        [
            ("old/app", tagged, "v1"),
            ("old/app", tagged, "v2"),
            ("old/app", untagged, None),
            ("old/app", digest_of(index), "multi"),
            ("old/app", digest_of(children[0]), "amd64"),
        ]
    )
    found = sorted(
        (r["repositoryName"], r["imageId"]["imageDigest"], r["imageId"].get("imageTag"))
        for r in done["results"]
    )
    assert found == expected
    assert {r["status"] for r in done["results"]} == {"COMPLETE"}
    assert done["progress"] == {
        "totalReplicationCount": 5,
        "completedReplicationCount": 5,
        "failedReplicationCount": 0,
        "failureCodes": [],
    }
    assert done["endedAt"] >= done["startedAt"]
    # and the images are in the destination, an index with its images
    destination = replicating_server.ecr(region_name=west)
    for digest in (tagged, untagged, digest_of(index), *map(digest_of, children)):
        assert manifest_in(destination, "old/app", digest) is not None
    tags = destination.describe_images(repositoryName="old/app", imageIds=[{"imageDigest": tagged}])
    assert sorted(tags["imageDetails"][0]["imageTags"]) == ["v1", "v2"]
    expect_error(
        "RepositoryNotFoundException", destination.describe_images, repositoryName="skipped/app"
    )
    # the images' replication statuses say so too
    assert statuses(source, "old/app", {"imageDigest": untagged})[0]["status"] == "COMPLETE"
    # results filter and paginate
    failed_only = backfill_results(source, backfill_id, resultStatusFilter="FAILED")
    assert failed_only["results"] == []
    first = backfill_results(source, backfill_id, maxResults=3)
    assert len(first["results"]) == 3
    rest = backfill_results(source, backfill_id, maxResults=3, nextToken=first["nextToken"])
    assert len(rest["results"]) == 2 and "nextToken" not in rest
    assert destination.describe_images(repositoryName="old/app", imageIds=[{"imageTag": "amd64"}])[
        "imageDetails"
    ][0]["imageDigest"] == digest_of(children[0])
    # and the backfill is listed
    listed = source.list_replication_backfills()["backfills"]
    assert [(b["replicationBackfillId"], b["status"]) for b in listed] == [
        (backfill_id, "COMPLETE")
    ]


def test_backfill_failures_are_counted_by_code(replicating_server: EcrdServer, source: Any) -> None:
    other_account = "444455556666"
    west = new_region()
    new_image(source, "denied/app", "one", "v1")
    configure(source, rule((other_account, west)))
    started = source.start_replication_backfill(
        destination={"region": west, "registryId": other_account}
    )
    done = eventually(lambda: backfill_results(source, started["replicationBackfillId"]), ended)
    assert done["status"] == "COMPLETE"
    assert done["progress"]["failedReplicationCount"] == 1
    assert done["progress"]["failureCodes"] == ["ACCESS_DENIED"]
    [result] = done["results"]
    assert (result["status"], result["failureCode"]) == ("FAILED", "ACCESS_DENIED")


@contextlib.contextmanager
def replication_held_elsewhere(server: EcrdServer) -> Iterator[None]:
    """The replication job's lease taken by another holder (as another process would hold
    it), so that backfills stay where they are until the block ends."""
    url = server.database_url or f"sqlite:///{(server.data_dir / 'metadata.db').resolve()}"

    def in_thread(work: Callable[[JobStore], Any]) -> Any:
        async def run() -> Any:
            database = Database(url)
            try:
                return await work(JobStore(database))
            finally:
                await database.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, run()).result(timeout=60)

    until = datetime.now(UTC) + timedelta(minutes=5)
    taken = eventually(
        lambda: in_thread(
            lambda jobs: jobs.take("replication", "the test", "command", datetime.now(UTC), until)
        ),
        lambda claim: claim.run_id is not None,
    )
    try:
        yield
    finally:
        in_thread(
            lambda jobs: jobs.finish(
                taken.run_id, "replication", "the test", until, datetime.now(UTC),
                "succeeded", {}, None,
            )
        )  # fmt: skip


def test_backfill_quotas_stop_and_errors(replicating_server: EcrdServer, source: Any) -> None:
    regions = [new_region() for _ in range(11)]
    configure(source, rule(*[(OTHER_ACCOUNT, region) for region in regions]))
    new_image(source, "quota/app", "one", "v1")

    def start(region: str) -> dict[str, Any]:
        answer: dict[str, Any] = source.start_replication_backfill(
            destination={"region": region, "registryId": OTHER_ACCOUNT}
        )
        return answer

    # a destination the configuration does not name
    expect_error(
        "InvalidParameterException",
        source.start_replication_backfill,
        destination={"region": new_region(), "registryId": ACCOUNT_ID},
    )
    with replication_held_elsewhere(replicating_server):
        started = [start(region) for region in regions[:10]]
        assert {answer["status"] for answer in started} == {"PREPARING"}
        # one under way per destination region
        expect_error("ReplicationBackfillInProgressException", start, regions[0])
        # and at most 10 under way in a registry
        expect_error("LimitExceededException", start, regions[10])
        # a backfill is stopped before it has prepared
        first = started[0]["replicationBackfillId"]
        stopping = source.stop_replication_backfill(replicationBackfillId=first)
        assert stopping["status"] == "STOPPING"
        assert stopping["replicationBackfillId"] == first
        # still preparing: no progress yet, no results
        waiting = backfill_results(source, started[1]["replicationBackfillId"])
        assert waiting["status"] == "PREPARING"
        assert "progress" not in waiting and "results" not in waiting
        listed = source.list_replication_backfills(maxResults=4)
        assert len(listed["backfills"]) == 4
        rest = source.list_replication_backfills(nextToken=listed["nextToken"])
        ids = [b["replicationBackfillId"] for b in listed["backfills"] + rest["backfills"]]
        assert sorted(ids) == sorted(answer["replicationBackfillId"] for answer in started)
    # once the job runs again, the stopped one ends STOPPED with nothing done
    stopped = eventually(lambda: backfill_results(source, first), ended)
    assert stopped["status"] == "STOPPED"
    assert "progress" not in stopped and stopped["results"] == []
    expect_error(
        "ReplicationBackfillInvalidStatusException",
        source.stop_replication_backfill,
        replicationBackfillId=first,
    )
    # its region is free again
    again = start(regions[0])
    eventually(lambda: backfill_results(source, again["replicationBackfillId"]), ended)
    unknown = "00000000-0000-4000-8000-000000000000"
    expect_error(
        "ReplicationBackfillNotFoundException",
        source.stop_replication_backfill,
        replicationBackfillId=unknown,
    )
    expect_error("ReplicationBackfillNotFoundException", backfill_results, source, unknown)
    # another registry does not see a backfill
    expect_error(
        "ReplicationBackfillNotFoundException",
        backfill_results,
        replicating_server.ecr(region_name=new_region()),
        first,
    )
    expect_error(
        "InvalidParameterException", source.list_replication_backfills, nextToken="bm90IGEgdG9rZW4="
    )
    # a token made by hand with a NUL in its key is refused, not passed to the database
    scope = f"ListReplicationBackfills:{ACCOUNT_ID}:{source.meta.region_name}"
    forged = json.dumps([scope, ["2026-01-01T00:00:00+00:00", "a\u0000b"]])
    expect_error(
        "InvalidParameterException",
        source.list_replication_backfills,
        nextToken=base64.urlsafe_b64encode(forged.encode()).decode(),
    )
