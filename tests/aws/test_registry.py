"""Registry-wide operations: DescribeRegistry, the registry policy, scanning configurations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT_ID, ecr_client
from tests.conftest import EcrdServer

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReplicateFromPeer",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/*",
            }
        ],
    }
)


@pytest.fixture
def own_ecr(own_server: EcrdServer) -> Iterator[Any]:
    yield ecr_client(own_server)


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_describe_registry_names_the_account_and_has_no_replication(ecr: Any) -> None:
    described = ecr.describe_registry()
    assert described["registryId"] == ACCOUNT_ID
    assert described["replicationConfiguration"] == {"rules": []}


def test_registry_policy_lifecycle(own_ecr: Any) -> None:
    # Given a registry without a policy
    with pytest.raises(ClientError) as missing:
        own_ecr.get_registry_policy()
    assert error_code(missing) == "RegistryPolicyNotFoundException"
    # When a policy is put, then it is returned as given
    put = own_ecr.put_registry_policy(policyText=POLICY)
    assert put["registryId"] == ACCOUNT_ID
    assert json.loads(put["policyText"]) == json.loads(POLICY)
    assert own_ecr.get_registry_policy()["policyText"] == put["policyText"]
    # When it is deleted, then the deleted text comes back and the registry has none
    deleted = own_ecr.delete_registry_policy()
    assert deleted["policyText"] == put["policyText"]
    with pytest.raises(ClientError) as gone:
        own_ecr.delete_registry_policy()
    assert error_code(gone) == "RegistryPolicyNotFoundException"


@pytest.mark.parametrize(
    "policy_text",
    [
        "{not json",
        json.dumps({"Version": "2012-10-17", "Statement": []}),
        json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "ecr:*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "x"}], "X": 1}),
    ],
)
def test_malformed_registry_policy_is_refused_and_nothing_stored(
    own_ecr: Any, policy_text: str
) -> None:
    with pytest.raises(ClientError) as refused:
        own_ecr.put_registry_policy(policyText=policy_text)
    assert error_code(refused) == "InvalidParameterException"
    with pytest.raises(ClientError) as missing:
        own_ecr.get_registry_policy()
    assert error_code(missing) == "RegistryPolicyNotFoundException"


def test_scanning_configurations_of_repositories(ecr: Any, new_repository: str) -> None:
    # Given a repository that scans on push
    ecr.put_image_scanning_configuration(
        repositoryName=new_repository, imageScanningConfiguration={"scanOnPush": True}
    )
    # When its scanning configuration and one of a missing repository are asked for
    answer = ecr.batch_get_repository_scanning_configuration(
        repositoryNames=[new_repository, "no/such-repository"]
    )
    # Then each gets its configuration or a REPOSITORY_NOT_FOUND failure
    [configuration] = answer["scanningConfigurations"]
    assert configuration["repositoryName"] == new_repository
    assert configuration["scanOnPush"] is True
    assert configuration["scanFrequency"] == "SCAN_ON_PUSH"
    assert configuration["repositoryArn"].endswith(f":repository/{new_repository}")
    [failure] = answer["failures"]
    assert failure["repositoryName"] == "no/such-repository"
    assert failure["failureCode"] == "REPOSITORY_NOT_FOUND"
