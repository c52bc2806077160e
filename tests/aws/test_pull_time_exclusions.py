"""Pull-time update exclusions against the real server: RegisterPullTimeUpdateExclusion,
DeregisterPullTimeUpdateExclusion and ListPullTimeUpdateExclusions, and pulls by an excluded
principal (over /v2/ and with BatchGetImage) leaving lastRecordedPullTime as it was.

What the ECR user guide says and these tests hold ecrd to: "When a role in the exclusion list
pulls an image, the pull time remains unchanged. Any other role continues to update pull
time"; "You can configure up to 100 exclusions"; "The default page size for listing
exclusions is 100"; an exclusion that exists already is ExclusionAlreadyExistsException, one
that does not ExclusionNotFoundException.

Pull times are written in the background, at most once a minute per image and process: so a
test shows that an excluded pull wrote nothing by letting another principal pull a second
image afterwards and waiting for that one's time, and each case uses images of its own.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT_ID, ecr_client
from tests.aws.images_helpers import OCI_MANIFEST, error_code, new_image
from tests.conftest import AccessKeyPair, EcrdServer

PULL_TIME_WAIT_SECONDS = 10
# Every action on every repository: the users here pull, and nothing is being authorized.
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
}


@pytest.fixture(scope="module")
def exclusion_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server of this module's own: the exclusion list is registry-wide."""
    instance = EcrdServer(tmp_path_factory.mktemp("exclusions") / "data")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(exclusion_server: EcrdServer) -> Any:
    return ecr_client(exclusion_server)


@pytest.fixture
def repository(ecr: Any) -> str:
    name = f"pulls/{uuid.uuid4().hex[:12]}"
    ecr.create_repository(repositoryName=name)
    return name


@pytest.fixture(scope="module")
def users(exclusion_server: EcrdServer) -> tuple[AccessKeyPair, AccessKeyPair]:
    """Two users who may pull: the first is the one tests exclude."""
    return (
        exclusion_server.create_key(user="scanner", policies=[EVERYTHING]),
        exclusion_server.create_key(user="deployer", policies=[EVERYTHING]),
    )


def _user_arn(name: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def _pull_over_v2(server: EcrdServer, key: AccessKeyPair, repository: str, tag: str) -> None:
    login = base64.b64encode(f"AWS:{server.registry_password(key)}".encode()).decode()
    response = httpx.get(
        f"{server.url}/v2/{repository}/manifests/{tag}",
        headers={"Authorization": f"Basic {login}", "Accept": OCI_MANIFEST},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _pull_with_batch_get_image(
    server: EcrdServer, key: AccessKeyPair, repository: str, tag: str
) -> None:
    fetched = server.ecr_as(key).batch_get_image(
        repositoryName=repository, imageIds=[{"imageTag": tag}]
    )
    assert fetched["failures"] == [] and len(fetched["images"]) == 1


def _detail(ecr: Any, repository: str, tag: str) -> dict[str, Any]:
    (detail,) = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])[
        "imageDetails"
    ]
    return dict(detail)


def _wait_for_pull_time(ecr: Any, repository: str, tag: str) -> dict[str, Any]:
    deadline = time.monotonic() + PULL_TIME_WAIT_SECONDS
    while True:
        detail = _detail(ecr, repository, tag)
        if "lastRecordedPullTime" in detail or time.monotonic() > deadline:
            return detail
        time.sleep(0.1)


def _refused(call: Any, **arguments: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**arguments)
    return error_code(refused), str(refused.value.response["Error"]["Message"])


# Pulls


@pytest.mark.parametrize("pull", [_pull_over_v2, _pull_with_batch_get_image], ids=["v2", "api"])
def test_an_excluded_principal_s_pull_leaves_the_pull_time_and_another_s_sets_it(
    exclusion_server: EcrdServer,
    ecr: Any,
    repository: str,
    users: tuple[AccessKeyPair, AccessKeyPair],
    pull: Any,
) -> None:
    scanner, deployer = users
    # Given two images never pulled, and the scanner excluded from pull times
    new_image(ecr, repository, "scanned", "scanned")
    new_image(ecr, repository, "witness", "witness")
    ecr.register_pull_time_update_exclusion(principalArn=scanner.arn)
    try:
        # When the scanner pulls the first image, and then the deployer the second
        pull(exclusion_server, scanner, repository, "scanned")
        pull(exclusion_server, deployer, repository, "witness")
        # Then the deployer's pull is recorded, and the scanner's is not
        assert "lastRecordedPullTime" in _wait_for_pull_time(ecr, repository, "witness")
        assert "lastRecordedPullTime" not in _detail(ecr, repository, "scanned")
        # When the deployer pulls the image the scanner pulled, then that pull is recorded
        # (the scanner's pull did not count as the one of this minute)
        started = datetime.now(UTC)
        pull(exclusion_server, deployer, repository, "scanned")
        detail = _wait_for_pull_time(ecr, repository, "scanned")
        assert abs(detail["lastRecordedPullTime"] - started) < timedelta(minutes=1)
    finally:
        ecr.deregister_pull_time_update_exclusion(principalArn=scanner.arn)


def test_a_deregistered_principal_s_pulls_are_recorded_again(
    exclusion_server: EcrdServer,
    ecr: Any,
    repository: str,
    users: tuple[AccessKeyPair, AccessKeyPair],
) -> None:
    scanner, _deployer = users
    new_image(ecr, repository, "after deregistration", "v1")
    ecr.register_pull_time_update_exclusion(principalArn=scanner.arn)
    removed = ecr.deregister_pull_time_update_exclusion(principalArn=scanner.arn)
    assert removed["principalArn"] == scanner.arn
    _pull_over_v2(exclusion_server, scanner, repository, "v1")
    assert "lastRecordedPullTime" in _wait_for_pull_time(ecr, repository, "v1")


def test_an_exclusion_of_another_registry_does_not_apply(
    exclusion_server: EcrdServer,
    ecr: Any,
    repository: str,
    users: tuple[AccessKeyPair, AccessKeyPair],
) -> None:
    # An exclusion belongs to the registry of the account and region it was made in
    scanner, _deployer = users
    europe = ecr_client(exclusion_server, region="eu-west-1")
    europe.register_pull_time_update_exclusion(principalArn=scanner.arn)
    new_image(ecr, repository, "other registry", "v1")
    _pull_with_batch_get_image(exclusion_server, scanner, repository, "v1")
    assert "lastRecordedPullTime" in _wait_for_pull_time(ecr, repository, "v1")
    assert ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == []


# Register, deregister, list


def test_register_answers_the_principal_and_when(exclusion_server: EcrdServer) -> None:
    ecr = ecr_client(exclusion_server, region="ap-south-1")
    arn = "arn:aws:iam::123456789012:role/path/to/Scanner+Role@x"
    started = datetime.now(UTC)
    registered = ecr.register_pull_time_update_exclusion(principalArn=arn)
    assert registered["principalArn"] == arn
    assert abs(registered["createdAt"] - started) < timedelta(minutes=1)
    assert ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [arn]


def test_registering_twice_is_exclusion_already_exists(exclusion_server: EcrdServer) -> None:
    ecr = ecr_client(exclusion_server, region="ca-central-1")
    arn = _user_arn("twice")
    ecr.register_pull_time_update_exclusion(principalArn=arn)
    code, message = _refused(ecr.register_pull_time_update_exclusion, principalArn=arn)
    assert code == "ExclusionAlreadyExistsException"
    assert arn in message
    assert ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [arn]


@pytest.mark.parametrize("stored_registry", [False, True], ids=["new-registry", "stored"])
def test_deregistering_what_is_not_excluded_is_exclusion_not_found(
    exclusion_server: EcrdServer, stored_registry: bool
) -> None:
    ecr = ecr_client(exclusion_server, region="sa-east-1" if stored_registry else "eu-north-1")
    if stored_registry:
        ecr.register_pull_time_update_exclusion(principalArn=_user_arn("someone-else"))
    code, message = _refused(
        ecr.deregister_pull_time_update_exclusion, principalArn=_user_arn("never")
    )
    assert code == "ExclusionNotFoundException"
    assert _user_arn("never") in message


@pytest.mark.parametrize(
    "principal_arn",
    [
        f"arn:aws:iam::{ACCOUNT_ID}:root",
        f"arn:aws:iam::{ACCOUNT_ID}:group/developers",
        "arn:aws:iam::12345:user/short-account",
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/role/session",
        f"arn:aws:iam::{ACCOUNT_ID}:user/",
        f"arn:aws:iam::{ACCOUNT_ID}:user/" + "a" * 200,
        "not an arn",
        "",
    ],
    ids=["root", "group", "account", "sts", "no-name", "too-long", "text", "empty"],
)
@pytest.mark.parametrize(
    "operation", ["register_pull_time_update_exclusion", "deregister_pull_time_update_exclusion"]
)
def test_a_principal_arn_that_is_no_user_or_role_arn_is_invalid_parameter(
    exclusion_server: EcrdServer, principal_arn: str, operation: str
) -> None:
    loose = ecr_client(exclusion_server, region="eu-south-1", validate=False)
    code, _ = _refused(getattr(loose, operation), principalArn=principal_arn)
    assert code == "InvalidParameterException"
    assert loose.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == []


def test_a_missing_principal_arn_is_invalid_parameter(exclusion_server: EcrdServer) -> None:
    loose = ecr_client(exclusion_server, region="eu-south-1", validate=False)
    code, _ = _refused(loose.register_pull_time_update_exclusion)
    assert code == "InvalidParameterException"


def test_the_list_holds_100_exclusions_and_pages_through_them(
    exclusion_server: EcrdServer,
) -> None:
    ecr = ecr_client(exclusion_server, region="us-west-2")
    # Given a registry with 100 exclusions, registered out of order
    arns = [_user_arn(f"user-{number:03d}") for number in range(100)]
    for arn in reversed(arns):
        ecr.register_pull_time_update_exclusion(principalArn=arn)
    # Then a 101st is over ECR's limit, and a registered one is still only "already exists"
    code, message = _refused(
        ecr.register_pull_time_update_exclusion, principalArn=_user_arn("one-too-many")
    )
    assert code == "LimitExceededException"
    assert "100" in message
    code, _ = _refused(ecr.register_pull_time_update_exclusion, principalArn=arns[0])
    assert code == "ExclusionAlreadyExistsException"
    # And the default page holds all 100, in order, with no token
    listed = ecr.list_pull_time_update_exclusions()
    assert listed["pullTimeUpdateExclusions"] == arns
    assert "nextToken" not in listed
    # And pages of 30 give them all once
    sizes, seen = [], []
    arguments: dict[str, Any] = {"maxResults": 30}
    for _page in range(10):
        page = ecr.list_pull_time_update_exclusions(**arguments)
        sizes.append(len(page["pullTimeUpdateExclusions"]))
        seen.extend(page["pullTimeUpdateExclusions"])
        if "nextToken" not in page:
            break
        arguments["nextToken"] = page["nextToken"]
    assert sizes == [30, 30, 30, 10]
    assert seen == arns
    # When one is deregistered, then there is room for another
    ecr.deregister_pull_time_update_exclusion(principalArn=arns[50])
    ecr.register_pull_time_update_exclusion(principalArn=_user_arn("one-too-many"))
    assert len(ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]) == 100


def test_a_registry_with_no_exclusions_lists_none(exclusion_server: EcrdServer) -> None:
    ecr = ecr_client(exclusion_server, region="me-south-1")
    listed = ecr.list_pull_time_update_exclusions(maxResults=1)
    assert listed["pullTimeUpdateExclusions"] == []
    assert "nextToken" not in listed


@pytest.mark.parametrize(
    "arguments",
    [
        {"maxResults": 0},
        {"maxResults": 1001},
        {"nextToken": "not a token"},
        {"nextToken": base64.urlsafe_b64encode(b'["ListImages:1:ANY", 5]').decode()},
    ],
    ids=["zero", "over-1000", "garbage-token", "token-of-another-call"],
)
def test_bad_list_parameters_are_invalid_parameter(
    exclusion_server: EcrdServer, arguments: dict[str, Any]
) -> None:
    loose = ecr_client(exclusion_server, validate=False)
    code, _ = _refused(loose.list_pull_time_update_exclusions, **arguments)
    assert code == "InvalidParameterException"
