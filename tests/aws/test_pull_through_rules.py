"""Pull-through cache rules through boto3: ECR's checks of each upstream registry's URL,
credential and role, its errors, pagination and quota; Validate against an upstream out of
reach; pushes into a cached namespace refused on both doors."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from tests.api_errors import expect_error
from tests.aws.conftest import ACCOUNT_ID
from tests.conftest import EcrdServer, free_port

QUAY = "quay.io"
DOCKER_HUB = "registry-1.docker.io"


@pytest.fixture(scope="module")
def cache_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server whose quay.io is a loopback port nothing listens on."""
    closed = free_port()
    instance = EcrdServer(
        tmp_path_factory.mktemp("rules") / "data",
        environment={"ECRD_UPSTREAM_ENDPOINTS": json.dumps({QUAY: f"http://127.0.0.1:{closed}"})},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(cache_server: EcrdServer, region: str) -> Any:
    return cache_server.ecr("ecr", region_name=region)


@pytest.fixture
def secrets(cache_server: EcrdServer, region: str) -> Any:
    return cache_server.ecr("secretsmanager", region_name=region)


def make_secret(secrets: Any, name: str = "ecr-pullthroughcache/hub") -> str:
    value = json.dumps({"username": "someone", "accessToken": "dckr_pat_x"})
    return str(secrets.create_secret(Name=name, SecretString=value)["ARN"])


def test_a_rule_for_quay_is_created_described_and_deleted(ecr: Any) -> None:
    created = ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="quay-cache", upstreamRegistryUrl=QUAY, upstreamRegistry="quay"
    )
    assert created["ecrRepositoryPrefix"] == "quay-cache"
    assert created["upstreamRegistryUrl"] == QUAY
    assert created["upstreamRegistry"] == "quay"
    assert created["registryId"] == ACCOUNT_ID
    assert created["upstreamRepositoryPrefix"] == "ROOT"
    assert "credentialArn" not in created
    (described,) = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert described["ecrRepositoryPrefix"] == "quay-cache"
    assert described["createdAt"] == created["createdAt"]
    assert "updatedAt" in described
    deleted = ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay-cache")
    assert deleted["upstreamRegistryUrl"] == QUAY
    assert ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []
    expect_error(
        "PullThroughCacheRuleNotFoundException",
        ecr.delete_pull_through_cache_rule,
        ecrRepositoryPrefix="quay-cache",
    )


def test_the_upstream_registry_is_inferred_from_its_url_and_the_slash_is_implied(
    ecr: Any,
) -> None:
    created = ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="k8s/", upstreamRegistryUrl="registry.k8s.io"
    )
    assert created["upstreamRegistry"] == "k8s"
    assert created["ecrRepositoryPrefix"] == "k8s"
    expect_error(
        "PullThroughCacheRuleAlreadyExistsException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="k8s",
        upstreamRegistryUrl="registry.k8s.io",
    )


def test_unknown_or_mismatched_upstreams_are_unsupported(ecr: Any) -> None:
    expect_error(
        "UnsupportedUpstreamRegistryException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="elsewhere",
        upstreamRegistryUrl="registry.example.com",
    )
    expect_error(
        "UnsupportedUpstreamRegistryException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        upstreamRegistryUrl=QUAY,
        upstreamRegistry="docker-hub",
    )
    assert ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []


def test_credentials_are_required_exactly_where_ecr_requires_them(ecr: Any, secrets: Any) -> None:
    message = expect_error(
        "InvalidParameterException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        upstreamRegistryUrl=DOCKER_HUB,
    )
    assert "credentialArn" in message
    arn = make_secret(secrets)
    expect_error(
        "InvalidParameterException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="quay",
        upstreamRegistryUrl=QUAY,
        credentialArn=arn,
    )
    expect_error(
        "InvalidParameterException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        upstreamRegistryUrl=DOCKER_HUB,
        credentialArn=arn,
        customRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/puller",
    )
    created = ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
    )
    assert created["credentialArn"] == arn
    assert created["upstreamRegistry"] == "docker-hub"


def test_a_missing_or_foreign_secret_is_refused(ecr: Any, secrets: Any, region: str) -> None:
    expect_error(
        "SecretNotFoundException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        upstreamRegistryUrl=DOCKER_HUB,
        credentialArn=f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:"
        "ecr-pullthroughcache/none-AbCdEf",
    )
    arn = make_secret(secrets)
    elsewhere = arn.replace(f":{region}:", ":us-west-2:")
    expect_error(
        "UnableToAccessSecretException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        upstreamRegistryUrl=DOCKER_HUB,
        credentialArn=elsewhere,
    )
    assert ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []


def test_an_ecr_upstream_takes_a_role_and_upstream_prefix(ecr: Any) -> None:
    url = f"{ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com"
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/puller"
    created = ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="mirror",
        upstreamRegistryUrl=url,
        upstreamRegistry="ecr",
        customRoleArn=role,
        upstreamRepositoryPrefix="team-a",
    )
    assert created["customRoleArn"] == role
    assert created["upstreamRepositoryPrefix"] == "team-a"
    message = expect_error(
        "InvalidParameterException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="ROOT",
        upstreamRegistryUrl=url,
        upstreamRepositoryPrefix="team-a",
    )
    assert "upstreamRepositoryPrefix" in message


def test_describe_by_prefix_pages_and_reports_missing_prefixes(ecr: Any) -> None:
    for prefix in ("a-cache", "b-cache", "c-cache"):
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=QUAY)
    first = ecr.describe_pull_through_cache_rules(maxResults=2)
    assert [r["ecrRepositoryPrefix"] for r in first["pullThroughCacheRules"]] == [
        "a-cache",
        "b-cache",
    ]
    second = ecr.describe_pull_through_cache_rules(maxResults=2, nextToken=first["nextToken"])
    assert [r["ecrRepositoryPrefix"] for r in second["pullThroughCacheRules"]] == ["c-cache"]
    assert "nextToken" not in second
    named = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["c-cache", "a-cache"])
    assert {r["ecrRepositoryPrefix"] for r in named["pullThroughCacheRules"]} == {
        "a-cache",
        "c-cache",
    }
    expect_error(
        "PullThroughCacheRuleNotFoundException",
        ecr.describe_pull_through_cache_rules,
        ecrRepositoryPrefixes=["a-cache", "zzz"],
    )


def test_a_registry_holds_at_most_fifty_rules(ecr: Any) -> None:
    for number in range(50):
        ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=f"cache{number:02d}", upstreamRegistryUrl=QUAY
        )
    expect_error(
        "LimitExceededException",
        ecr.create_pull_through_cache_rule,
        ecrRepositoryPrefix="one-more",
        upstreamRegistryUrl=QUAY,
    )


def test_update_changes_the_credential_and_checks_it(ecr: Any, secrets: Any) -> None:
    expect_error(
        "PullThroughCacheRuleNotFoundException",
        ecr.update_pull_through_cache_rule,
        ecrRepositoryPrefix="hub",
        credentialArn=make_secret(secrets, "ecr-pullthroughcache/first"),
    )
    first = make_secret(secrets, "ecr-pullthroughcache/one")
    second = make_secret(secrets, "ecr-pullthroughcache/two")
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=first
    )
    updated = ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="hub", credentialArn=second)
    assert updated["credentialArn"] == second
    assert "updatedAt" in updated
    (rule,) = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert rule["credentialArn"] == second
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl=QUAY)
    expect_error(
        "InvalidParameterException",
        ecr.update_pull_through_cache_rule,
        ecrRepositoryPrefix="quay",
        credentialArn=second,
    )


def test_validate_reports_an_upstream_out_of_reach(ecr: Any) -> None:
    expect_error(
        "PullThroughCacheRuleNotFoundException",
        ecr.validate_pull_through_cache_rule,
        ecrRepositoryPrefix="quay",
    )
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl=QUAY)
    answer = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert answer["isValid"] is False
    assert "out of reach" in answer["failure"]
    assert answer["upstreamRegistryUrl"] == QUAY


def test_pushes_into_a_cached_namespace_are_refused(
    cache_server: EcrdServer, ecr: Any, region: str
) -> None:
    # The data plane serves the default region; its registry gets the rule for this test.
    default = cache_server.ecr("ecr")
    prefix = "pushless" + "".join(random.choices(string.ascii_lowercase, k=6))
    default.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=QUAY)
    try:
        with cache_server.http() as http:
            answer = http.post(f"/v2/{prefix}/app/blobs/uploads/")
        assert answer.status_code == 403
        assert answer.json()["errors"][0]["code"] == "DENIED"
        default.create_repository(repositoryName=f"{prefix}/made")
        message = expect_error(
            "InvalidParameterException",
            default.put_image,
            repositoryName=f"{prefix}/made",
            imageManifest=json.dumps({"schemaVersion": 2}),
            imageTag="x",
        )
        assert "pull through cache" in message
        # Outside the namespace pushes go on as before.
        with cache_server.http() as http:
            answer = http.post(f"/v2/{prefix}-not/app/blobs/uploads/")
        assert answer.status_code == 202
    finally:
        default.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
