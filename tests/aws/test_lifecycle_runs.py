"""Lifecycle policies applied for real: `ecrd lifecycle run` (and --dry-run) and the
`lifecycle` job through `ecrd jobs run lifecycle`, each a subprocess against the test server's
store, checked through the API as a client would see the result."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import ACCOUNT_ID, REGION, ecr_client
from tests.aws.images_helpers import (
    OCI_MANIFEST,
    image_manifest,
    index_manifest,
    put_image,
)
from tests.aws.test_lifecycle_api import (
    aged_images,
    days_ago,
    expiring,
    keep_newest,
    older_than,
    policy,
    preview_of,
    set_image_times,
    set_preview_row,
)
from tests.conftest import EcrdServer, assert_one_line_error

HOOKS = {"ECRD_TEST_HOOKS": "true"}


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server with the test hooks on, shared by this module's tests."""
    instance = EcrdServer(tmp_path_factory.mktemp("lifecycle-runs") / "data", environment=HOOKS)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def hooked_alone(tmp_path: Path) -> Iterator[EcrdServer]:
    """A server of the test's own with the test hooks on: a run over every repository then
    counts only the test's."""
    instance = EcrdServer(tmp_path / "data", environment=HOOKS)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(hooked: EcrdServer) -> Any:
    return ecr_client(hooked)


@pytest.fixture
def repository(ecr: Any) -> str:
    name = f"runs/{uuid.uuid4().hex[:12]}"
    ecr.create_repository(repositoryName=name)
    return name


def lifecycle_run(server: EcrdServer, *arguments: str) -> subprocess.CompletedProcess[str]:
    result = server.ecrd_command("lifecycle", "run", *arguments)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def digests_in(ecr: Any, repository: str) -> set[str]:
    return {
        detail["imageDigest"]
        for detail in ecr.describe_images(repositoryName=repository)["imageDetails"]
    }


def test_a_policy_keeping_the_two_newest_of_five_leaves_two(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given five images pushed 5 to 1 days ago and a policy keeping the two newest
    digests = aged_images(hooked, ecr, repository, [5, 4, 3, 2, 1])
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=policy(keep_newest(2)))
    # when a dry run goes first
    dry = lifecycle_run(hooked, "--repository", repository, "--dry-run")
    # then it says what it would expire, and changes nothing
    header = f"{ACCOUNT_ID} {REGION} {repository}: would expire 3, would transition 0 (dry run)"
    assert header in dry.stdout.splitlines()
    for digest in digests[:3]:
        assert f"  would expire {digest} " in dry.stdout
    assert digests_in(ecr, repository) == set(digests)
    assert "lastEvaluatedAt" not in ecr.get_lifecycle_policy(repositoryName=repository)
    # when the policy is applied
    before = datetime.now(UTC)
    applied = lifecycle_run(hooked, "--repository", repository)
    # then the two newest images are left
    assert digests_in(ecr, repository) == set(digests[3:])
    lines = applied.stdout.splitlines()
    assert f"{ACCOUNT_ID} {REGION} {repository}: expired 3, transitioned 0" in lines
    for number, digest in enumerate(digests[:3]):
        assert f"  expired {digest} (v{number}; rule 1)" in lines
    # and their tags went with them
    listed = ecr.list_images(repositoryName=repository)["imageIds"]
    assert sorted(image_id["imageTag"] for image_id in listed) == ["v3", "v4"]
    # and the policy records when it was evaluated
    evaluated = ecr.get_lifecycle_policy(repositoryName=repository)["lastEvaluatedAt"]
    assert before.timestamp() - 1 <= evaluated.timestamp() <= datetime.now(UTC).timestamp() + 1
    # and a second run finds nothing more to do
    again = lifecycle_run(hooked, "--repository", repository)
    assert f"{ACCOUNT_ID} {REGION} {repository}: expired 0, transitioned 0" in again.stdout
    assert digests_in(ecr, repository) == set(digests[3:])


def test_since_image_pushed_expires_images_aged_by_the_hook(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given untagged images aged 40, 31 and 29 days, and one just pushed
    digests = aged_images(hooked, ecr, repository, [40, 31, 29, 0], tagged=False)
    rule = older_than(30, tag_status="untagged")
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=policy(rule))
    lifecycle_run(hooked, "--repository", repository)
    # then only the two older than 30 days are gone
    assert digests_in(ecr, repository) == set(digests[2:])


def test_the_preview_and_the_run_agree(hooked: EcrdServer, ecr: Any, repository: str) -> None:
    # given tagged and untagged images of several ages and a policy of three rules
    tagged = aged_images(hooked, ecr, repository, [50, 40, 30, 20, 10, 5])
    untagged = aged_images(hooked, ecr, repository, [60, 15, 3], tagged=False)
    text = policy(
        keep_newest(2, priority=1, tag_status="tagged", tagPrefixList=["v"]),
        older_than(10, priority=2, tag_status="untagged"),
    )
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=text)
    # when the repository's own policy is previewed, then applied
    previewed = expiring(preview_of(ecr, repository))
    assert previewed  # something to compare
    lifecycle_run(hooked, "--repository", repository)
    # then exactly what the preview said would expire is gone
    left = digests_in(ecr, repository)
    assert left == set(tagged + untagged) - previewed
    assert previewed == set(tagged[:4]) | {untagged[0], untagged[1]}


def aged_index(server: EcrdServer, ecr: Any, repository: str, days: int) -> tuple[str, list[str]]:
    """An index tagged "multi" over two untagged images, all pushed `days` ago: (the index's
    digest, its images' digests)."""
    children = [
        image_manifest(ecr, repository, layers=[f"{repository} child {n}".encode()])
        for n in range(2)
    ]
    child_digests = [
        put_image(ecr, repository, child, imageManifestMediaType=OCI_MANIFEST)["imageId"][
            "imageDigest"
        ]
        for child in children
    ]
    index_digest = put_image(ecr, repository, index_manifest(children), "multi")["imageId"][
        "imageDigest"
    ]
    for digest in [index_digest, *child_digests]:
        set_image_times(server, repository, digest, imagePushedAt=days_ago(days))
    return index_digest, child_digests


def test_an_expiring_index_goes_with_the_images_it_lists(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given an index tagged "multi" over two untagged images, all pushed 30 days ago
    index_digest, child_digests = aged_index(hooked, ecr, repository, days=30)
    # and a policy expiring everything over a week old
    text = policy(older_than(7))
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=text)
    previewed = expiring(preview_of(ecr, repository))
    assert index_digest in previewed
    # when it is applied
    result = lifecycle_run(hooked, "--repository", repository)
    # then what the preview expired is gone, the index first (no image was refused for an
    # index listing it), and an image an index still lists stays
    assert "not done" not in result.stdout
    left = digests_in(ecr, repository)
    assert left == {index_digest, *child_digests} - previewed
    assert index_digest not in left


def test_a_transition_archives_the_image(hooked: EcrdServer, ecr: Any, repository: str) -> None:
    # given an image pushed 40 days ago and one pushed today
    old, new = aged_images(hooked, ecr, repository, [40, 0])
    rule = older_than(30, action="transition")
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=policy(rule))
    # the preview says it goes to the archive
    answer = preview_of(ecr, repository)
    (result,) = answer["previewResults"]
    assert result["imageDigest"] == old
    assert result["action"] == {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}
    assert answer["summary"] == {
        "expiringImageTotalCount": 0,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}],
    }
    # when the policy is applied
    applied = lifecycle_run(hooked, "--repository", repository)
    assert f"{ACCOUNT_ID} {REGION} {repository}: expired 0, transitioned 1" in applied.stdout
    assert f"  transitioned {old} to ARCHIVE (v0; rule 1)" in applied.stdout
    # then the old image is archived (still there), the new one untouched
    details = ecr.describe_images(
        repositoryName=repository, imageIds=[{"imageDigest": old}, {"imageDigest": new}]
    )["imageDetails"]
    status = {detail["imageDigest"]: detail["imageStatus"] for detail in details}
    assert status == {old: "ARCHIVED", new: "ACTIVE"}


def test_images_of_an_archived_index_are_archived_but_not_expired_with_it(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given an index over two images, all pushed 40 days ago, the index archived
    index_digest, child_digests = aged_index(hooked, ecr, repository, days=40)
    ecr.update_image_storage_class(
        repositoryName=repository,
        imageId={"imageDigest": index_digest},
        targetStorageClass="ARCHIVE",
    )
    # when a policy archives what is over 30 days old, then the images it lists go too
    rule = older_than(30, action="transition")
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=policy(rule))
    applied = lifecycle_run(hooked, "--repository", repository)
    assert f"{repository}: expired 0, transitioned 2" in applied.stdout
    details = ecr.describe_images(repositoryName=repository, filter={"imageStatus": "ANY"})
    status = {detail["imageDigest"]: detail["imageStatus"] for detail in details["imageDetails"]}
    assert status == {digest: "ARCHIVED" for digest in [index_digest, *child_digests]}


def test_the_run_is_narrowed_by_registry_and_region(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    digests = aged_images(hooked, ecr, repository, [3, 2, 1])
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=policy(keep_newest(1)))
    # another account or region has no such repository: nothing changes
    for narrowed in (["--registry-id", "111111111111"], ["--region", "eu-west-1"]):
        result = hooked.ecrd_command("lifecycle", "run", "--repository", repository, *narrowed)
        assert_one_line_error(result, repository, "lifecycle policy")
        assert digests_in(ecr, repository) == set(digests)
    lifecycle_run(
        hooked, "--repository", repository, "--registry-id", ACCOUNT_ID, "--region", REGION
    )
    assert digests_in(ecr, repository) == {digests[2]}


def test_the_command_refuses_bad_arguments_in_one_line(hooked: EcrdServer) -> None:
    missing = hooked.ecrd_command("lifecycle", "run", "--repository", "runs/no-such-repository")
    assert_one_line_error(missing, "runs/no-such-repository")
    bad_account = hooked.ecrd_command("lifecycle", "run", "--registry-id", "12")
    assert bad_account.returncode == 2
    assert "--registry-id" in bad_account.stderr
    assert "Traceback" not in bad_account.stderr


def test_the_lifecycle_job_applies_every_policy(hooked_alone: EcrdServer) -> None:
    ecr = ecr_client(hooked_alone)
    # given two repositories with policies, and one without
    kept: dict[str, set[str]] = {}
    for number in range(2):
        name = f"job/{number}-{uuid.uuid4().hex[:8]}"
        ecr.create_repository(repositoryName=name)
        digests = aged_images(hooked_alone, ecr, name, [4, 3, 2, 1])
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy(keep_newest(3)))
        kept[name] = set(digests[1:])
    bystander = "job/no-policy"
    ecr.create_repository(repositoryName=bystander)
    untouched = set(aged_images(hooked_alone, ecr, bystander, [9, 8]))
    # and a preview of the bystander that finished over a day ago (it reads EXPIRED)
    preview_of(ecr, bystander, policy(older_than(7)))
    day_ago = datetime.now(UTC) - timedelta(hours=25)
    set_preview_row(hooked_alone, bystander, started_at=day_ago, finished_at=day_ago)
    results_query = (
        "SELECT COUNT(*) FROM lifecycle_preview_results r JOIN repositories p "
        "ON p.id = r.repository_id WHERE p.name = :name"
    )
    assert hooked_alone.metadata_query(results_query, name=bystander) == [(2,)]
    # when the job runs from the command line
    result = hooked_alone.ecrd_command("jobs", "run", "lifecycle")
    # then it reports both repositories and what it did
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("lifecycle succeeded in ")
    assert result.stdout.rstrip().endswith(": expired 2, repositories 2, transitioned 0")
    for name, left in kept.items():
        assert digests_in(ecr, name) == left
        assert "lastEvaluatedAt" in ecr.get_lifecycle_policy(repositoryName=name)
    assert digests_in(ecr, bystander) == untouched
    # and the expired preview's results were dropped; it still reads EXPIRED
    assert hooked_alone.metadata_query(results_query, name=bystander) == [(0,)]
    expired = ecr.get_lifecycle_policy_preview(repositoryName=bystander)
    assert expired["status"] == "EXPIRED"
    # and the job is listed with its interval (lifecycle_interval_seconds, 1 hour)
    listed = hooked_alone.ecrd_command("jobs", "list")
    (line,) = [entry for entry in listed.stdout.splitlines() if entry.startswith("lifecycle ")]
    assert "every 1h" in line
    assert "last succeeded" in line
