"""ECR's account settings through boto3: defaults, values, errors, and their effect: the
registry policy's scope (V1 governs only replication and pull-through-cache actions, V2
everything) and blob mounting."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_errors import expect_error
from tests.conftest import (
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
    clean_environment,
)

OTHER_ACCOUNT = "222233334444"


@pytest.fixture(scope="module")
def settings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server of this module's own: BLOB_MOUNTING and the policy scope of its default
    registry change here."""
    instance = EcrdServer(tmp_path_factory.mktemp("account-settings") / "data")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def ecr(settings_server: EcrdServer, region: str) -> Any:
    return settings_server.ecr(region_name=region)


def test_each_setting_has_ecrs_default(ecr: Any) -> None:
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V2"
    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "AWS_NATIVE"
    # ecrd mounts by default (see docs/design.md)
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"


def test_a_setting_put_is_read_back_and_stays_in_its_region(
    settings_server: EcrdServer, ecr: Any
) -> None:
    put = ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V1")
    assert (put["name"], put["value"]) == ("REGISTRY_POLICY_SCOPE", "V1")
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V1"
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V2"
    ecr.put_account_setting(name="BASIC_SCAN_TYPE_VERSION", value="CLAIR")
    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "CLAIR"
    # another region's registry keeps the default
    other = settings_server.ecr(region_name="eu-central-2")
    assert other.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "AWS_NATIVE"


def test_unknown_names_and_values_are_invalid_parameters(ecr: Any) -> None:
    message = expect_error("InvalidParameterException", ecr.get_account_setting, name="COLOUR")
    assert "REGISTRY_POLICY_SCOPE" in message
    expect_error("InvalidParameterException", ecr.put_account_setting, name="COLOUR", value="V2")
    message = expect_error(
        "InvalidParameterException",
        ecr.put_account_setting,
        name="REGISTRY_POLICY_SCOPE",
        value="V3",
    )
    assert "V1" in message and "V2" in message
    expect_error(
        "InvalidParameterException", ecr.put_account_setting, name="BLOB_MOUNTING", value="ON"
    )
    # nothing was stored by the refused calls
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V2"


def _policy(action: str, effect: str = "Allow", principal: str = OTHER_ACCOUNT) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "s1",
                    "Effect": effect,
                    "Principal": (
                        "*" if principal == "*" else {"AWS": f"arn:aws:iam::{principal}:root"}
                    ),
                    "Action": action,
                    "Resource": "*",
                }
            ],
        }
    )


def test_under_v1_the_registry_policy_takes_only_replication_and_cache_actions(
    ecr: Any,
) -> None:
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V1")
    expect_error(
        "InvalidParameterException", ecr.put_registry_policy, policyText=_policy("ecr:PutImage")
    )
    for action in ("ecr:ReplicateImage", "ecr:CreateRepository", "ecr:BatchImportUpstreamImage"):
        assert ecr.put_registry_policy(policyText=_policy(action))["policyText"]
    # a wildcard is taken, as ECR takes `ecr:*`; action names are compared without case
    ecr.put_registry_policy(policyText=_policy("ecr:*"))
    ecr.put_registry_policy(policyText=_policy("ECR:replicateimage"))
    # under V2 any action is
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
    ecr.put_registry_policy(policyText=_policy("ecr:PutImage"))


def test_the_scope_decides_whether_the_registry_policy_governs_other_actions(
    settings_server: EcrdServer, region: str
) -> None:
    # given the root of another account, and a registry whose policy grants that account
    # ecr:* on every repository
    ecr = settings_server.ecr(region_name=region)
    ecr.create_repository(repositoryName="scope/app")
    other = settings_server.ecr_as(settings_server.create_key(OTHER_ACCOUNT), region_name=region)
    ecr.put_registry_policy(policyText=_policy("ecr:*"))
    # under V2 (the default) the grant lets the other account describe the repository
    found = other.describe_repositories(
        registryId=settings_server.ecr().describe_registry()["registryId"],
        repositoryNames=["scope/app"],
    )
    assert [r["repositoryName"] for r in found["repositories"]] == ["scope/app"]
    # under V1 the same grant no longer reaches ecr:DescribeRepositories
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V1")
    expect_error(
        "AccessDeniedException",
        other.describe_repositories,
        registryId=found["repositories"][0]["registryId"],
        repositoryNames=["scope/app"],
    )
    # and a Deny in it no longer stops the registry's own root from deleting images
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
    ecr.put_registry_policy(policyText=_policy("ecr:ListImages", "Deny", principal="*"))
    expect_error("AccessDeniedException", ecr.list_images, repositoryName="scope/app")
    ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V1")
    assert ecr.list_images(repositoryName="scope/app")["imageIds"] == []


def test_blob_mounting_disabled_makes_a_mount_a_plain_upload(settings_server: EcrdServer) -> None:
    # the default registry (us-east-1) is the one /v2/ serves
    ecr = settings_server.ecr()
    data = b"a layer to mount"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with settings_server.http() as client:
        started = client.post(f"/v2/mount/source/blobs/uploads/?digest={digest}", content=data)
        assert started.status_code == 201, started.text
        mount = f"/v2/mount/target/blobs/uploads/?mount={digest}&from=mount/source"
        # when mounting is on, the layer is mounted
        assert client.post(mount).status_code == 201
        # when it is off, another repository gets an upload session instead
        ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
        try:
            refused = client.post(mount.replace("mount/target", "mount/third"))
            assert refused.status_code == 202
            assert refused.headers["Location"].startswith("/v2/mount/third/blobs/uploads/")
            assert client.head(f"/v2/mount/third/blobs/{digest}").status_code == 404
        finally:
            ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
        assert client.post(mount.replace("mount/target", "mount/fourth")).status_code == 201


def test_the_cli_reads_and_puts_a_setting(settings_server: EcrdServer, region: str) -> None:
    environment = {
        **clean_environment(),
        "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
    }
    aws = [".venv/bin/aws", "ecr", "--endpoint-url", settings_server.url]
    put = subprocess.run(
        [*aws, "put-account-setting", "--name", "BLOB_MOUNTING", "--value", "DISABLED"],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    got = subprocess.run(
        [*aws, "get-account-setting", "--name", "BLOB_MOUNTING"],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    assert json.loads(got.stdout) == {"name": "BLOB_MOUNTING", "value": "DISABLED"}
