"""The lifecycle policy operations (Put, Get, Delete, StartLifecyclePolicyPreview,
GetLifecyclePolicyPreview) against the real server, with boto3 and the aws CLI, and the test
hook that ages images (`POST /_ecrd/test/image-times`).

The servers here run with ECRD_TEST_HOOKS=true, so that images can be made days old without
waiting; the session server (hooks off) shows the hook is absent by default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.schema import lifecycle_previews, repositories
from tests.api_errors import expect_error
from tests.aws.conftest import ACCOUNT_ID, ecr_client
from tests.aws.images_helpers import (
    OCI_MANIFEST,
    image_manifest,
    index_manifest,
    new_image,
    put_image,
)
from tests.aws.test_cli import AwsCli
from tests.conftest import EcrdServer

HOOK = "/_ecrd/test/image-times"
# How long a preview of a few images may take to complete here, at most.
PREVIEW_WAIT_SECONDS = 30


# Policies.


def policy(*rules: dict[str, Any]) -> str:
    # Indented on purpose: the server keeps the text as given (and ECR's minimum is 100).
    return json.dumps({"rules": list(rules)}, indent=2)


def keep_newest(count: int, priority: int = 1, tag_status: str = "any", **selection: Any
                ) -> dict[str, Any]:  # fmt: skip
    return {
        "rulePriority": priority,
        "description": f"keep the {count} newest",
        "selection": {
            "tagStatus": tag_status,
            "countType": "imageCountMoreThan",
            "countNumber": count,
            **selection,
        },
        "action": {"type": "expire"},
    }


def older_than(days: int, priority: int = 1, tag_status: str = "any", action: str = "expire",
               **selection: Any) -> dict[str, Any]:  # fmt: skip
    rule_action: dict[str, Any] = {"type": action}
    if action == "transition":
        rule_action["targetStorageClass"] = "archive"
    return {
        "rulePriority": priority,
        "description": f"{action} images pushed over {days} days ago",
        "selection": {
            "tagStatus": tag_status,
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": days,
            **selection,
        },
        "action": rule_action,
    }


# The server, its store and its hook.


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server with the test hooks on, for this module."""
    instance = EcrdServer(
        tmp_path_factory.mktemp("lifecycle-api") / "data",
        environment={"ECRD_TEST_HOOKS": "true"},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(hooked: EcrdServer) -> Any:
    return ecr_client(hooked)


@pytest.fixture
def repository(ecr: Any) -> str:
    name = f"lifecycle/{uuid.uuid4().hex[:12]}"
    ecr.create_repository(repositoryName=name)
    return name


def set_image_times(server: EcrdServer, repository: str, digest: str, **times: Any
                    ) -> httpx.Response:  # fmt: skip
    """POST the hook: times as the hook's members (imagePushedAt=..., ...)."""
    body = {"repositoryName": repository, "imageDigest": digest, **times}
    return httpx.post(f"{server.url}{HOOK}", json=body, timeout=30)


def days_ago(days: float) -> float:
    return (datetime.now(UTC) - timedelta(days=days)).timestamp()


def aged_images(server: EcrdServer, ecr: Any, repository: str, ages: list[float],
                tagged: bool = True) -> list[str]:  # fmt: skip
    """One image per age (in days), tagged v0, v1, ... unless not `tagged`; their digests."""
    digests = []
    for number, age in enumerate(ages):
        seed = f"{repository}-{number}-{uuid.uuid4().hex[:6]}"
        digest = new_image(ecr, repository, seed, f"v{number}" if tagged else None)
        answer = set_image_times(server, repository, digest, imagePushedAt=days_ago(age))
        assert answer.status_code == 200, answer.text
        digests.append(digest)
    return digests


def store_write(server: EcrdServer, work: Callable[[Connection], object]) -> None:
    """Run `work` in a write transaction on the server's metadata store (to stage a preview
    a process left behind, which no request can make)."""
    url = server.database_url or f"sqlite:///{(server.data_dir / 'metadata.db').resolve()}"

    async def run() -> None:
        database = Database(url)
        try:
            await database.write(work)
        finally:
            await database.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result(timeout=60)


def set_preview_row(server: EcrdServer, repository: str, **values: Any) -> None:
    def work(connection: Connection) -> None:
        repository_id = connection.execute(
            select(repositories.c.id).where(repositories.c.name == repository)
        ).scalar_one()
        connection.execute(
            update(lifecycle_previews)
            .where(lifecycle_previews.c.repository_id == repository_id)
            .values(**values)
        )

    store_write(server, work)


def wait_for_preview(ecr: Any, repository: str, **arguments: Any) -> dict[str, Any]:
    """GetLifecyclePolicyPreview once it is no longer IN_PROGRESS."""
    deadline = time.monotonic() + PREVIEW_WAIT_SECONDS
    while True:
        answer: dict[str, Any] = ecr.get_lifecycle_policy_preview(
            repositoryName=repository, **arguments
        )
        if answer["status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def preview_of(ecr: Any, repository: str, policy_text: str | None = None, **arguments: Any
               ) -> dict[str, Any]:  # fmt: skip
    """Start a preview (of `policy_text`, else the repository's policy) and wait for it."""
    start: dict[str, Any] = {"repositoryName": repository}
    if policy_text is not None:
        start["lifecyclePolicyText"] = policy_text
    started = ecr.start_lifecycle_policy_preview(**start)
    assert started["status"] == "IN_PROGRESS"
    answer = wait_for_preview(ecr, repository, **arguments)
    assert answer["status"] == "COMPLETE", answer
    return answer


def expiring(answer: dict[str, Any]) -> set[str]:
    return {
        result["imageDigest"]
        for result in answer["previewResults"]
        if result["action"]["type"] == "EXPIRE"
    }


def missing_policy_message(repository: str) -> str:
    return (
        f"Lifecycle policy does not exist for the repository with name '{repository}' in the "
        f"registry with id '{ACCOUNT_ID}'"
    )


# PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy.


def test_a_policy_is_put_read_and_deleted_as_given(ecr: Any, repository: str) -> None:
    # given a policy text, indented as a person writes it
    text = policy(keep_newest(3))
    # when it is put
    put = ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=text)
    # then the answer names the registry and repository, and gives the text back as sent
    assert (put["registryId"], put["repositoryName"]) == (ACCOUNT_ID, repository)
    assert put["lifecyclePolicyText"] == text
    # and reading it gives the same text, with no evaluation yet
    got = ecr.get_lifecycle_policy(repositoryName=repository)
    assert got["lifecyclePolicyText"] == text
    assert got["registryId"] == ACCOUNT_ID
    assert "lastEvaluatedAt" not in got
    # and a second put replaces it
    other = policy(keep_newest(5))
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=other)
    assert ecr.get_lifecycle_policy(repositoryName=repository)["lifecyclePolicyText"] == other
    # and deleting it answers the policy that was deleted
    deleted = ecr.delete_lifecycle_policy(repositoryName=repository)
    assert deleted["lifecyclePolicyText"] == other
    assert deleted["repositoryName"] == repository
    # after which the repository has none
    message = expect_error(
        "LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repository
    )
    assert message == missing_policy_message(repository)


def test_get_and_delete_without_a_policy_are_lifecycle_policy_not_found(
    ecr: Any, repository: str
) -> None:
    for operation in (ecr.get_lifecycle_policy, ecr.delete_lifecycle_policy):
        message = expect_error(
            "LifecyclePolicyNotFoundException", operation, repositoryName=repository
        )
        assert message == missing_policy_message(repository)


def test_every_operation_on_a_missing_repository_is_repository_not_found(ecr: Any) -> None:
    name = f"lifecycle/missing-{uuid.uuid4().hex[:8]}"
    text = policy(keep_newest(1))
    calls: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (ecr.put_lifecycle_policy, {"lifecyclePolicyText": text}),
        (ecr.get_lifecycle_policy, {}),
        (ecr.delete_lifecycle_policy, {}),
        (ecr.start_lifecycle_policy_preview, {"lifecyclePolicyText": text}),
        (ecr.start_lifecycle_policy_preview, {}),
        (ecr.get_lifecycle_policy_preview, {}),
    ]
    for operation, arguments in calls:
        message = expect_error(
            "RepositoryNotFoundException", operation, repositoryName=name, **arguments
        )
        assert message == (
            f"The repository with name '{name}' does not exist in the registry with id "
            f"'{ACCOUNT_ID}'"
        )


def test_an_invalid_policy_is_refused_with_ecrs_wording(ecr: Any, repository: str) -> None:
    # a JSON object of over 100 characters without "rules"
    text = json.dumps({"ruleset": [{"rulePriority": 1, "description": "x" * 100}]})
    for operation in (ecr.put_lifecycle_policy, ecr.start_lifecycle_policy_preview):
        message = expect_error(
            "InvalidParameterException",
            operation,
            repositoryName=repository,
            lifecyclePolicyText=text,
        )
        assert message.startswith(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            "'Lifecycle policy validation failure: "
        ), message
        assert message.endswith("'")
        assert "rules" in message
    # and nothing was stored
    expect_error(
        "LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repository
    )


def test_a_policy_text_under_100_characters_is_invalid(hooked: EcrdServer, repository: str
                                                       ) -> None:  # fmt: skip
    # the model's minimum length; boto3 would refuse it before sending, so send it anyway
    unvalidated = ecr_client(hooked, validate=False)
    message = expect_error(
        "InvalidParameterException",
        unvalidated.put_lifecycle_policy,
        repositoryName=repository,
        lifecyclePolicyText='{"rules": []}',
    )
    assert "lifecyclePolicyText" in message


# Previews.


def test_start_preview_without_text_needs_the_repositorys_own_policy(
    ecr: Any, repository: str
) -> None:
    message = expect_error(
        "LifecyclePolicyNotFoundException",
        ecr.start_lifecycle_policy_preview,
        repositoryName=repository,
    )
    assert message == missing_policy_message(repository)


def test_get_preview_before_any_is_lifecycle_policy_preview_not_found(
    ecr: Any, repository: str
) -> None:
    message = expect_error(
        "LifecyclePolicyPreviewNotFoundException",
        ecr.get_lifecycle_policy_preview,
        repositoryName=repository,
    )
    assert repository in message
    assert ACCOUNT_ID in message


def test_a_preview_keeping_the_two_newest_expires_the_rest(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given five images pushed 5, 4, 3, 2 and 1 days ago
    digests = aged_images(hooked, ecr, repository, [5, 4, 3, 2, 1])
    text = policy(keep_newest(2))
    # when a preview of a policy keeping the two newest runs
    answer = preview_of(ecr, repository, text)
    # then it expires the three oldest, by rule 1, from the standard storage class
    assert answer["lifecyclePolicyText"] == text
    assert expiring(answer) == set(digests[:3])
    for result in answer["previewResults"]:
        assert result["appliedRulePriority"] == 1
        assert result["storageClass"] == "STANDARD"
        assert result["action"] == {"type": "EXPIRE"}
        number = digests.index(result["imageDigest"])
        assert result["imageTags"] == [f"v{number}"]
        assert abs(result["imagePushedAt"].timestamp() - days_ago(5 - number)) < 120
    assert answer["summary"] == {"expiringImageTotalCount": 3}
    # and the preview changed nothing: the policy is not set and every image is there
    expect_error(
        "LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repository
    )
    assert len(ecr.describe_images(repositoryName=repository)["imageDetails"]) == 5


def test_a_preview_without_text_previews_the_repositorys_policy(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    digests = aged_images(hooked, ecr, repository, [3, 2, 1])
    text = policy(keep_newest(1))
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=text)
    started = ecr.start_lifecycle_policy_preview(repositoryName=repository)
    assert started["lifecyclePolicyText"] == text
    assert (started["registryId"], started["repositoryName"]) == (ACCOUNT_ID, repository)
    answer = wait_for_preview(ecr, repository)
    assert answer["status"] == "COMPLETE"
    assert expiring(answer) == set(digests[:2])


def test_since_image_pushed_expires_only_images_older_than_the_days(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given images aged 10 and 8 days, 6 days and just pushed
    digests = aged_images(hooked, ecr, repository, [10, 8, 6, 0])
    answer = preview_of(ecr, repository, policy(older_than(7)))
    assert expiring(answer) == set(digests[:2])
    assert answer["summary"]["expiringImageTotalCount"] == 2


def test_preview_results_filter_by_tag_status_and_image_ids(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given two tagged and two untagged images, all old enough to expire
    tagged = aged_images(hooked, ecr, repository, [20, 19])
    untagged = aged_images(hooked, ecr, repository, [18, 17], tagged=False)
    answer = preview_of(ecr, repository, policy(older_than(7)))
    assert expiring(answer) == set(tagged + untagged)
    # when filtered by tag status, only those images are in the results
    for status, wanted in (("TAGGED", tagged), ("UNTAGGED", untagged), ("ANY", tagged + untagged)):
        filtered = ecr.get_lifecycle_policy_preview(
            repositoryName=repository, filter={"tagStatus": status}
        )
        assert {r["imageDigest"] for r in filtered["previewResults"]} == set(wanted), status
        # and the summary still counts the whole preview
        assert filtered["summary"]["expiringImageTotalCount"] == 4
    for result in ecr.get_lifecycle_policy_preview(
        repositoryName=repository, filter={"tagStatus": "UNTAGGED"}
    )["previewResults"]:
        assert "imageTags" not in result
    # and by image ids: one by digest, one by tag, one that matches nothing
    by_ids = ecr.get_lifecycle_policy_preview(
        repositoryName=repository,
        imageIds=[
            {"imageDigest": untagged[0]},
            {"imageTag": "v1"},
            {"imageTag": "no-such-tag"},
        ],
    )
    assert {r["imageDigest"] for r in by_ids["previewResults"]} == {untagged[0], tagged[1]}
    assert "nextToken" not in by_ids
    # a tag and a digest of different images match nothing
    mismatched = ecr.get_lifecycle_policy_preview(
        repositoryName=repository, imageIds=[{"imageDigest": untagged[0], "imageTag": "v0"}]
    )
    assert mismatched["previewResults"] == []


def test_preview_results_are_paged_with_max_results_and_next_token(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    digests = aged_images(hooked, ecr, repository, [30, 29, 28, 27, 26], tagged=False)
    preview_of(ecr, repository, policy(older_than(7)))
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while pages < 10:
        arguments: dict[str, Any] = {"repositoryName": repository, "maxResults": 2}
        if token is not None:
            arguments["nextToken"] = token
        page = ecr.get_lifecycle_policy_preview(**arguments)
        pages += 1
        assert len(page["previewResults"]) <= 2
        seen += [result["imageDigest"] for result in page["previewResults"]]
        assert page["summary"]["expiringImageTotalCount"] == 5
        token = page.get("nextToken")
        if token is None:
            break
    # then three pages of 2, 2 and 1 give every result once
    assert pages == 3
    assert sorted(seen) == sorted(digests)
    # and boto3's paginator walks the same pages
    paginator = ecr.get_paginator("get_lifecycle_policy_preview")
    walked = [
        result["imageDigest"]
        for page in paginator.paginate(repositoryName=repository, PaginationConfig={"PageSize": 2})
        for result in page["previewResults"]
    ]
    assert sorted(walked) == sorted(digests)


def test_preview_page_arguments_are_checked(hooked: EcrdServer, ecr: Any, repository: str
                                            ) -> None:  # fmt: skip
    aged_images(hooked, ecr, repository, [30, 29, 28], tagged=False)
    first = preview_of(ecr, repository, policy(older_than(7)), maxResults=1)
    token = first["nextToken"]
    # imageIds may not be given with maxResults or nextToken
    for extra in ({"maxResults": 5}, {"nextToken": token}):
        expect_error(
            "InvalidParameterException",
            ecr.get_lifecycle_policy_preview,
            repositoryName=repository,
            imageIds=[{"imageTag": "v1"}],
            **extra,
        )
    # a malformed digest, or an image id with neither digest nor tag, is invalid
    message = expect_error(
        "InvalidParameterException",
        ecr.get_lifecycle_policy_preview,
        repositoryName=repository,
        imageIds=[{"imageDigest": "sha256:not-hex"}],
    )
    assert "Invalid image digest" in message
    unvalidated = ecr_client(hooked, validate=False)
    expect_error(
        "InvalidParameterException",
        unvalidated.get_lifecycle_policy_preview,
        repositoryName=repository,
        imageIds=[{}],
    )
    # a forged token, and a token for another filter, are invalid
    for bad in ("not a token", token[:-4]):
        expect_error(
            "InvalidParameterException",
            ecr.get_lifecycle_policy_preview,
            repositoryName=repository,
            nextToken=bad,
        )
    expect_error(
        "InvalidParameterException",
        ecr.get_lifecycle_policy_preview,
        repositoryName=repository,
        nextToken=token,
        filter={"tagStatus": "UNTAGGED"},
    )
    # and a token of an earlier preview is refused once a new one replaced it
    preview_of(ecr, repository, policy(older_than(7)))
    message = expect_error(
        "InvalidParameterException",
        ecr.get_lifecycle_policy_preview,
        repositoryName=repository,
        nextToken=token,
    )
    assert "nextToken" in message


def test_a_preview_in_progress_refuses_another_and_a_dead_one_reads_failed(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    aged_images(hooked, ecr, repository, [9, 8])
    text = policy(older_than(7))
    preview_of(ecr, repository, text)
    # given a preview IN_PROGRESS, started a moment ago (as a process computing it has)
    now = datetime.now(UTC)
    set_preview_row(hooked, repository, status="IN_PROGRESS", started_at=now, finished_at=None)
    # then another start is refused while it runs
    expect_error(
        "LifecyclePolicyPreviewInProgressException",
        ecr.start_lifecycle_policy_preview,
        repositoryName=repository,
        lifecyclePolicyText=text,
    )
    in_progress = ecr.get_lifecycle_policy_preview(repositoryName=repository)
    assert in_progress["status"] == "IN_PROGRESS"
    assert in_progress["previewResults"] == []
    assert "summary" not in in_progress
    # when the process computing it died: an IN_PROGRESS eleven minutes old reads FAILED
    set_preview_row(hooked, repository, started_at=now - timedelta(minutes=11))
    assert ecr.get_lifecycle_policy_preview(repositoryName=repository)["status"] == "FAILED"
    # and a new preview may start and completes
    answer = preview_of(ecr, repository, text)
    assert answer["summary"]["expiringImageTotalCount"] == 2


def test_a_preview_a_day_old_reads_expired(hooked: EcrdServer, ecr: Any, repository: str
                                           ) -> None:  # fmt: skip
    aged_images(hooked, ecr, repository, [9])
    preview_of(ecr, repository, policy(older_than(7)))
    day_ago = datetime.now(UTC) - timedelta(hours=25)
    set_preview_row(hooked, repository, started_at=day_ago, finished_at=day_ago)
    answer = ecr.get_lifecycle_policy_preview(repositoryName=repository)
    assert answer["status"] == "EXPIRED"
    assert answer["previewResults"] == []
    assert "summary" not in answer


def test_a_preview_of_an_index_lists_it_and_an_empty_repository_has_no_results(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    # given an empty repository, a preview completes with no results
    answer = preview_of(ecr, repository, policy(older_than(7)))
    assert answer["previewResults"] == []
    assert answer["summary"] == {"expiringImageTotalCount": 0}
    # given an old index (tagged) over two untagged images
    children = [
        image_manifest(ecr, repository, layers=[f"{repository} child {n}".encode()])
        for n in range(2)
    ]
    for child in children:
        put_image(ecr, repository, child, imageManifestMediaType=OCI_MANIFEST)
    index = index_manifest(children)
    index_digest = put_image(ecr, repository, index, "multi")["imageId"]["imageDigest"]
    set_image_times(hooked, repository, index_digest, imagePushedAt=days_ago(30))
    # then a preview expiring tagged images over 7 days old names the index
    tagged_rule = older_than(7, tag_status="tagged", tagPrefixList=["multi"])
    answer = preview_of(ecr, repository, policy(tagged_rule))
    assert index_digest in expiring(answer)


def test_the_aws_cli_waits_for_a_preview_to_complete(
    hooked: EcrdServer, ecr: Any, repository: str, tmp_path: Path
) -> None:
    digests = aged_images(hooked, ecr, repository, [10, 1])
    aws = AwsCli(hooked, tmp_path)
    text = policy(older_than(7))
    started = aws.json(
        "ecr", "start-lifecycle-policy-preview",
        "--repository-name", repository, "--lifecycle-policy-text", text,
    )  # fmt: skip
    assert started["status"] == "IN_PROGRESS"
    # the waiter polls GetLifecyclePolicyPreview until COMPLETE (and fails on FAILED)
    aws("ecr", "wait", "lifecycle-policy-preview-complete", "--repository-name", repository)
    answer = aws.json("ecr", "get-lifecycle-policy-preview", "--repository-name", repository)
    assert answer["status"] == "COMPLETE"
    assert [result["imageDigest"] for result in answer["previewResults"]] == [digests[0]]
    assert answer["summary"]["expiringImageTotalCount"] == 1


# The test hook.


def test_the_image_times_hook_is_absent_unless_test_hooks_is_on(
    server: EcrdServer, repository_name: str
) -> None:
    # the session server runs with the default settings
    answer = httpx.post(
        f"{server.url}{HOOK}",
        json={"repositoryName": repository_name, "imageDigest": "sha256:" + "0" * 64},
        timeout=30,
    )
    assert answer.status_code == 404


def test_the_hook_sets_an_images_times(hooked: EcrdServer, ecr: Any, repository: str) -> None:
    digest = new_image(ecr, repository, f"{repository}-times", "v1")
    pushed = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    # epoch seconds for one, ISO 8601 for the other
    answer = set_image_times(
        hooked,
        repository,
        digest,
        imagePushedAt=pushed.timestamp(),
        lastRecordedPullTime="2024-02-03T04:05:06Z",
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["imagePushedAt"] == pushed.timestamp()
    (detail,) = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert detail["imagePushedAt"] == pushed
    assert detail["lastRecordedPullTime"] == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    # null clears the pull time
    assert set_image_times(hooked, repository, digest, lastRecordedPullTime=None).status_code == 200
    (detail,) = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert "lastRecordedPullTime" not in detail
    assert detail["imagePushedAt"] == pushed


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"repositoryName": "a/b"}', "imageDigest"),
        (b'{"imageDigest": "sha256:' + b"0" * 64 + b'", "imagePushedAt": 1}', "repositoryName"),
        (b'{"repositoryName": "a/b", "imageDigest": "sha256:abc", "imagePushedAt": 1}', "digest"),
        (b'{"repositoryName": "a/b", "imageDigest": "sha256:' + b"0" * 64 + b'"}', "nothing"),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:' + b"0" * 64 + b'", "pushed": 1}',
            "unknown",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "imagePushedAt": null}',
            "imagePushedAt",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "imagePushedAt": -5}',
            "imagePushedAt",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "imagePushedAt": 1e300}',
            "imagePushedAt",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "imagePushedAt": true}',
            "imagePushedAt",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "lastArchivedAt": "yesterday"}',
            "lastArchivedAt",
        ),
        (
            b'{"repositoryName": "a/b", "imageDigest": "sha256:'
            + b"0" * 64
            + b'", "registryId": "123", "imagePushedAt": 1}',
            "registryId",
        ),
        (b"[" * 10_000, "JSON"),
        (b" " * 20_000, "larger"),
    ],
)
def test_the_hook_refuses_bad_input_with_400(hooked: EcrdServer, body: bytes, named: str
                                             ) -> None:  # fmt: skip
    answer = httpx.post(
        f"{hooked.url}{HOOK}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["message"]


def test_the_hook_answers_404_for_an_unknown_repository_or_image(
    hooked: EcrdServer, ecr: Any, repository: str
) -> None:
    digest = "sha256:" + "1" * 64
    missing_repository = set_image_times(hooked, "lifecycle/nowhere", digest, imagePushedAt=1)
    assert missing_repository.status_code == 404
    assert "lifecycle/nowhere" in missing_repository.json()["message"]
    missing_image = set_image_times(hooked, repository, digest, imagePushedAt=1)
    assert missing_image.status_code == 404
    assert digest in missing_image.json()["message"]
    # and another account's or region's registry is another registry
    real = new_image(ecr, repository, f"{repository}-elsewhere")
    elsewhere = set_image_times(
        hooked, repository, real, imagePushedAt=1, registryId="111111111111"
    )
    assert elsewhere.status_code == 404
    other_region = set_image_times(hooked, repository, real, imagePushedAt=1, region="eu-west-1")
    assert other_region.status_code == 404
