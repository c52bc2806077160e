"""The registry scanning configuration through boto3: ECR's default, its checks, and how
BatchGetRepositoryScanningConfiguration resolves a repository's scanning from the registry's
rules and the repository's own scanOnPush."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_errors import expect_error
from tests.conftest import ACCOUNT_ID, EcrdServer


@pytest.fixture(scope="module")
def scanning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path_factory.mktemp("scanning") / "data")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(scanning_server: EcrdServer, region: str) -> Any:
    return scanning_server.ecr(region_name=region)


def wildcard(*filters: str) -> list[dict[str, str]]:
    return [{"filter": text, "filterType": "WILDCARD"} for text in filters]


def scanning_of(ecr: Any, *names: str) -> dict[str, dict[str, Any]]:
    answer = ecr.batch_get_repository_scanning_configuration(repositoryNames=list(names))
    return {item["repositoryName"]: item for item in answer["scanningConfigurations"]}


def test_a_registry_scans_basic_with_no_rules_by_default(ecr: Any) -> None:
    answer = ecr.get_registry_scanning_configuration()
    assert answer["registryId"] == ACCOUNT_ID
    assert answer["scanningConfiguration"] == {"scanType": "BASIC", "rules": []}


def test_a_configuration_is_put_and_read_back(ecr: Any) -> None:
    rules = [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": wildcard("prod-*", "api")}]
    put = ecr.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
    assert put["registryScanningConfiguration"] == {"scanType": "BASIC", "rules": rules}
    got = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    assert got == {"scanType": "BASIC", "rules": rules}
    enhanced = [
        {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": wildcard("*")},
        {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": wildcard("team/*")},
    ]
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=enhanced)
    got = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    assert got == {"scanType": "ENHANCED", "rules": enhanced}
    # no arguments: BASIC with no rules again
    ecr.put_registry_scanning_configuration()
    got = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    assert got == {"scanType": "BASIC", "rules": []}


def test_ecrs_checks_on_a_scanning_configuration(
    scanning_server: EcrdServer, ecr: Any, region: str
) -> None:
    continuous = {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": wildcard("*")}
    message = expect_error(
        "InvalidParameterException",
        ecr.put_registry_scanning_configuration,
        scanType="BASIC",
        rules=[continuous],
    )
    assert "CONTINUOUS_SCAN" in message
    on_push = {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": wildcard("a*")}
    expect_error(
        "InvalidParameterException",
        ecr.put_registry_scanning_configuration,
        scanType="ENHANCED",
        rules=[on_push, on_push],
    )
    unchecked = scanning_server.ecr(region_name=region, parameter_validation=False)
    prefix_filter = {"filter": "a", "filterType": "PREFIX"}
    for rules in (
        [on_push, continuous, on_push],  # more than 2 rules
        [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": wildcard("UPPER")}],
        [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [prefix_filter]}],
        [{"scanFrequency": "HOURLY", "repositoryFilters": wildcard("a")}],
    ):
        expect_error(
            "InvalidParameterException",
            unchecked.put_registry_scanning_configuration,
            scanType="ENHANCED",
            rules=rules,
        )
    expect_error(
        "InvalidParameterException", unchecked.put_registry_scanning_configuration, scanType="X"
    )
    # nothing refused was stored
    got = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    assert got == {"scanType": "BASIC", "rules": []}


def test_repositories_get_the_rule_that_covers_them_else_their_own_flag(ecr: Any) -> None:
    ecr.create_repository(repositoryName="prod-api")
    ecr.create_repository(repositoryName="team/web")
    ecr.create_repository(repositoryName="flagged", imageScanningConfiguration={"scanOnPush": True})
    ecr.create_repository(repositoryName="plain")
    # before any rule, only the repository's own flag counts
    before = scanning_of(ecr, "flagged", "plain")
    assert (before["flagged"]["scanFrequency"], before["flagged"]["scanOnPush"]) == (
        "SCAN_ON_PUSH",
        True,
    )
    assert (before["plain"]["scanFrequency"], before["plain"]["scanOnPush"]) == ("MANUAL", False)
    assert before["plain"]["appliedScanFilters"] == []
    ecr.put_registry_scanning_configuration(
        scanType="ENHANCED",
        rules=[
            {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": wildcard("team/*", "prod-*")},
            {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": wildcard("prod-*")},
        ],
    )
    found = scanning_of(ecr, "prod-api", "team/web", "flagged", "plain")
    # CONTINUOUS_SCAN covers prod-api before SCAN_ON_PUSH does
    assert found["prod-api"]["scanFrequency"] == "CONTINUOUS_SCAN"
    assert found["prod-api"]["appliedScanFilters"] == wildcard("prod-*")
    assert found["team/web"]["scanFrequency"] == "SCAN_ON_PUSH"
    assert found["team/web"]["appliedScanFilters"] == wildcard("team/*")
    assert found["team/web"]["scanOnPush"] is True
    # no rule covers these: their own flag decides
    assert found["flagged"]["scanFrequency"] == "SCAN_ON_PUSH"
    assert found["plain"]["scanFrequency"] == "MANUAL"
    assert found["plain"]["scanOnPush"] is False
    # a missing repository is a failure, as before
    answer = ecr.batch_get_repository_scanning_configuration(repositoryNames=["no-such"])
    assert answer["failures"][0]["failureCode"] == "REPOSITORY_NOT_FOUND"
