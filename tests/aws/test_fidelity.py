"""Corners where ecrd answers as ECR does, each over the wire with boto3 and with AWS's words:

- repository and registry policies may repeat a Sid (ECR accepts them), identity policies may
  not (IAM: "Statement IDs (SID) in a single policy must be unique.");
- PutImage of a manifest that names no mediaType, with no imageManifestMediaType, is refused
  ("Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'",
  what ECR answers), while /v2/ still takes such an OCI manifest with its Content-Type;
- KMS encryption without a key shows the registry's AWS managed key as `key/<uuid>`, the same
  for every repository of a registry;
- a resourceArn that is not a repository ARN is "Invalid ARN";
- a value outside an enum "Member must satisfy enum value set: [...]";
- a policy that is JSON but not a policy "Invalid repository policy provided" (or registry).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from ecrd.cli import main as ecrd_command
from tests.api_errors import expect_error
from tests.aws.conftest import ACCOUNT_ID, REGION, ecr_client
from tests.aws.images_helpers import OCI_MANIFEST, digest_of, encode, image_manifest
from tests.conftest import EcrdServer

INVALID = "InvalidParameterException"
INVALID_REPOSITORY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid repository policy provided'"
)
INVALID_REGISTRY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid registry policy provided'"
)
INVALID_ARN = "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"
MEDIA_TYPE_MISSING = (
    "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
)
MUTABILITY_VALUES = "[MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]"
# AWS KMS key ARNs: arn:aws:kms:<region>:<account>:key/<key id, a UUID>
KMS_KEY_ARN = re.compile(
    r"arn:aws:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/"
    r"(?P<key_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
LOG_WAIT_SECONDS = 5


def unique_name(prefix: str = "fidelity") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def unique_account() -> str:
    """An account no other test uses, so its registry policy is the test's own."""
    return f"3{uuid.uuid4().int % 10**11:011d}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def repository(ecr: Any) -> Iterator[str]:
    name = unique_name()
    ecr.create_repository(repositoryName=name)
    yield name
    ecr.delete_repository(repositoryName=name, force=True)


def keys_create(server: EcrdServer, *arguments: str) -> Any:
    """`ecrd keys create` in this process (click's runner), with no ECRD_* from the shell."""
    unset: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ECRD_")}
    command = ["keys", "create", *arguments, *server.store_arguments()]
    return CliRunner().invoke(ecrd_command, command, env=unset)


# 1. Repeated statement ids


def test_a_repository_policy_repeating_a_sid_is_accepted_and_every_statement_applies(
    ecr: Any, repository: str
) -> None:
    # given a repository policy whose two statements share the Sid "Same", the second a Deny
    text = policy(
        {"Sid": "Same", "Effect": "Allow", "Principal": "*", "Action": "ecr:ListImages"},
        {"Sid": "Same", "Effect": "Deny", "Principal": "*", "Action": "ecr:DescribeImages"},
    )

    # when it is set, then ECR takes it as it is
    answer = ecr.set_repository_policy(repositoryName=repository, policyText=text)
    assert json.loads(answer["policyText"]) == json.loads(text)
    stored = ecr.get_repository_policy(repositoryName=repository)["policyText"]
    assert json.loads(stored) == json.loads(text)

    # and both statements are in force: the Deny refuses even the root, the Allow leaves listing
    expect_error("AccessDeniedException", ecr.describe_images, repositoryName=repository)
    assert ecr.list_images(repositoryName=repository)["imageIds"] == []


def test_a_registry_policy_repeating_a_sid_is_accepted(server: EcrdServer) -> None:
    # given an account of the test's own and a registry policy whose statements share a Sid
    account = unique_account()
    root = server.ecr_as(server.create_key(account))
    text = policy(
        {
            "Sid": "Replication",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": f"arn:aws:ecr:{REGION}:{account}:repository/*",
        },
        {
            "Sid": "Replication",
            "Effect": "Allow",
            "Principal": {"AWS": "111111111111"},
            "Action": "ecr:ReplicateImage",
            "Resource": f"arn:aws:ecr:{REGION}:{account}:repository/*",
        },
    )

    # when it is put, then it is stored as given
    answer = root.put_registry_policy(policyText=text)
    assert answer["registryId"] == account
    assert json.loads(root.get_registry_policy()["policyText"]) == json.loads(text)


def test_keys_create_refuses_an_identity_policy_repeating_a_sid_as_iam_does(
    server: EcrdServer, tmp_path: Path
) -> None:
    # given an identity policy whose two statements share a Sid (IAM refuses those)
    user = f"fidelity-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "repeated-sid.json"
    path.write_text(
        policy(
            {"Sid": "Pull", "Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"},
            {"Sid": "Pull", "Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*"},
        )
    )

    # when `ecrd keys create` is given it
    result = keys_create(server, "--user", user, "--policy", str(path))

    # then it is a usage error naming the option, the file, IAM's rule and the Sid; no key
    assert result.exit_code == 2, result.output
    assert "--policy" in result.stderr
    assert str(path) in result.stderr
    assert "Statement IDs (SID) in a single policy must be unique" in result.stderr
    assert "'Pull'" in result.stderr
    assert "AccessKeyId" not in result.stdout
    listed = CliRunner().invoke(ecrd_command, ["keys", "list", *server.store_arguments()])
    assert listed.exit_code == 0, listed.output
    assert f"user/{user}" not in listed.stdout


# 2. PutImage of a manifest that names no media type


def _without_media_type(manifest: str) -> str:
    document = json.loads(manifest)
    del document["mediaType"]
    return encode(document)


def _index_without_media_type() -> str:
    child = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"child"), "size": 5}
    return encode({"schemaVersion": 2, "manifests": [child]})


@pytest.mark.parametrize("kind", ["image manifest", "index"])
def test_put_image_of_a_manifest_naming_no_media_type_is_refused(
    ecr: Any, repository: str, kind: str
) -> None:
    # given an OCI manifest or index without its (optional) mediaType field
    if kind == "index":
        manifest = _index_without_media_type()
    else:
        manifest = _without_media_type(image_manifest(ecr, repository))

    # when it is put without imageManifestMediaType, then ECR refuses it in its own words
    message = expect_error(
        INVALID, ecr.put_image, repositoryName=repository, imageManifest=manifest, imageTag="v1"
    )
    assert message == MEDIA_TYPE_MISSING

    # and nothing was stored
    assert ecr.list_images(repositoryName=repository)["imageIds"] == []


def test_put_image_with_the_media_type_parameter_is_taken(ecr: Any, repository: str) -> None:
    # given the same kind of manifest, when imageManifestMediaType says what it is
    manifest = _without_media_type(image_manifest(ecr, repository))
    image = ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageManifestMediaType=OCI_MANIFEST,
        imageTag="v1",
    )["image"]

    # then it is stored with that type and its text as sent
    assert image["imageManifestMediaType"] == OCI_MANIFEST
    assert image["imageManifest"] == manifest


def test_ecr_public_put_image_naming_no_media_type_is_refused(server: EcrdServer) -> None:
    # given a public repository and a manifest without mediaType
    public = server.ecr("ecr-public")
    name = unique_name("fidelity-public")
    public.create_repository(repositoryName=name)
    try:
        manifest = _index_without_media_type()
        # when it is put, then ECR Public answers as ECR does
        message = expect_error(
            INVALID, public.put_image, repositoryName=name, imageManifest=manifest
        )
        assert message == MEDIA_TYPE_MISSING
    finally:
        public.delete_repository(repositoryName=name, force=True)


def test_the_data_plane_still_takes_an_oci_manifest_without_media_type(
    ecr: Any, client: httpx.Client, repository: str
) -> None:
    # given an OCI image manifest without mediaType, its type in Content-Type (the OCI way)
    manifest = _without_media_type(image_manifest(ecr, repository))

    # when it is pushed through /v2/
    pushed = client.put(
        f"/v2/{repository}/manifests/v1",
        content=manifest.encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )

    # then it is created, and the API shows it with that media type and its exact text
    assert pushed.status_code == 201, pushed.text
    fetched = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    assert fetched["failures"] == []
    assert fetched["images"][0]["imageManifestMediaType"] == OCI_MANIFEST
    assert fetched["images"][0]["imageManifest"] == manifest


# 3. KMS without a key: the registry's AWS managed key


def _kms_key_of(client: Any, name: str, encryption_type: str = "KMS") -> str:
    created = client.create_repository(
        repositoryName=name, encryptionConfiguration={"encryptionType": encryption_type}
    )["repository"]
    encryption = created["encryptionConfiguration"]
    assert encryption["encryptionType"] == encryption_type
    return str(encryption["kmsKey"])


def test_kms_without_a_key_shows_one_aws_managed_key_arn_per_registry(
    server: EcrdServer, ecr: Any
) -> None:
    # given two KMS repositories (one KMS_DSSE) created without a key in one registry
    names = [unique_name(), unique_name()]
    keys = [_kms_key_of(ecr, names[0]), _kms_key_of(ecr, names[1], "KMS_DSSE")]
    try:
        # then each shows a KMS key ARN of the registry's account and region, not an alias
        for key in keys:
            match = KMS_KEY_ARN.fullmatch(key)
            assert match is not None, key
            assert (match["region"], match["account"]) == (REGION, ACCOUNT_ID)
            assert uuid.UUID(match["key_id"])
        # and it is the same key: the registry's one AWS managed key for ECR
        assert keys[0] == keys[1]
        # and DescribeRepositories shows the same
        described = ecr.describe_repositories(repositoryNames=names)["repositories"]
        assert [r["encryptionConfiguration"]["kmsKey"] for r in described] == keys

        # when a registry of another region and one of another account do the same
        other_region = ecr_client(server, region="eu-west-1")
        other_account = server.ecr_as(server.create_key(unique_account()))
        in_other_region = _kms_key_of(other_region, unique_name())
        in_other_account = _kms_key_of(other_account, unique_name())

        # then each has a key of its own, in its own region and account
        other_region_match = KMS_KEY_ARN.fullmatch(in_other_region)
        other_account_match = KMS_KEY_ARN.fullmatch(in_other_account)
        assert other_region_match is not None and other_account_match is not None
        assert other_region_match["region"] == "eu-west-1"
        assert other_account_match["account"] != ACCOUNT_ID
        assert in_other_region != keys[0]
        assert in_other_account != keys[0]
        assert in_other_account != in_other_region
    finally:
        for name in names:
            ecr.delete_repository(repositoryName=name, force=True)


def test_the_aws_managed_key_arn_survives_a_restart(own_server: EcrdServer) -> None:
    # given a KMS repository without a key, and the key ARN it shows
    ecr = own_server.ecr()
    name = unique_name()
    shown = _kms_key_of(ecr, name)

    # when the server restarts, then the repository and a new one show the same key
    own_server.restart()
    ecr = own_server.ecr()
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": shown}
    assert _kms_key_of(ecr, unique_name()) == shown


def test_a_given_kms_key_and_aes256_are_shown_as_they_are(ecr: Any) -> None:
    # given a KMS repository with a key of its own and an AES256 one
    key = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0a1b2c3d-0000-4000-8000-000000000002"
    with_key = ecr.create_repository(
        repositoryName=unique_name(),
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key},
    )["repository"]
    aes = ecr.create_repository(repositoryName=unique_name())["repository"]
    try:
        # then the key is the one given, and AES256 names no key
        assert with_key["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}
        assert aes["encryptionConfiguration"] == {"encryptionType": "AES256"}
    finally:
        for repository in (with_key, aes):
            ecr.delete_repository(repositoryName=repository["repositoryName"], force=True)


# 4. Malformed resource ARNs


MALFORMED_ARNS = [
    "not-an-arn",
    "",
    f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repo/fidelity/x",
    f"arn:aws:ecr:{REGION}:12345:repository/fidelity/x",
    "arn:aws:s3:::a-bucket",
    f"arn:aws:ecr-public::{ACCOUNT_ID}:repository/fidelity/x",
]


def _tag_calls(client: Any, arn: str) -> list[tuple[Any, dict[str, Any]]]:
    return [
        (client.list_tags_for_resource, {"resourceArn": arn}),
        (client.tag_resource, {"resourceArn": arn, "tags": [{"Key": "k", "Value": "v"}]}),
        (client.untag_resource, {"resourceArn": arn, "tagKeys": ["k"]}),
    ]


@pytest.mark.parametrize("arn", MALFORMED_ARNS, ids=range(len(MALFORMED_ARNS)))
def test_tag_operations_on_a_malformed_arn_say_invalid_arn(ecr: Any, arn: str) -> None:
    # when each tag operation is given an ARN that is not an ECR repository's
    for operation, arguments in _tag_calls(ecr, arn):
        # then it is InvalidParameterException in ECR's words
        message = expect_error(INVALID, operation, **arguments)
        assert message == INVALID_ARN, operation


def test_ecr_public_tag_operations_on_a_private_arn_say_invalid_arn(server: EcrdServer) -> None:
    public = server.ecr("ecr-public")
    arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/fidelity/x"
    for operation, arguments in _tag_calls(public, arn):
        assert expect_error(INVALID, operation, **arguments) == INVALID_ARN


def test_a_well_formed_arn_of_no_repository_is_not_found(ecr: Any) -> None:
    # given the ARN of a repository that does not exist, then it is not found, not invalid
    name = unique_name()
    arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"
    message = expect_error(
        "RepositoryNotFoundException", ecr.list_tags_for_resource, resourceArn=arn
    )
    assert name in message


# 5. Enum values


def test_create_repository_with_an_unknown_tag_mutability(ecr: Any) -> None:
    name = unique_name()
    message = expect_error(
        INVALID, ecr.create_repository, repositoryName=name, imageTagMutability="SOMETIMES"
    )
    assert message == (
        "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: "
        f"'Member must satisfy enum value set: {MUTABILITY_VALUES}'"
    )
    expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[name])


def test_put_image_tag_mutability_with_an_unknown_value(ecr: Any, repository: str) -> None:
    message = expect_error(
        INVALID,
        ecr.put_image_tag_mutability,
        repositoryName=repository,
        imageTagMutability="invalid",
    )
    assert message == (
        "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: "
        f"'Member must satisfy enum value set: {MUTABILITY_VALUES}'"
    )


def test_a_nested_enum_names_its_path(ecr: Any) -> None:
    message = expect_error(
        INVALID,
        ecr.create_repository,
        repositoryName=unique_name(),
        encryptionConfiguration={"encryptionType": "NONE"},
    )
    assert message == (
        "Invalid parameter at 'encryptionConfiguration.encryptionType' failed to satisfy "
        "constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]'"
    )


# 6. JSON that is not a policy


NOT_POLICIES = {
    "not-json": '{"Version": "2012-10-17", "Statement": [',
    "no-statement": json.dumps({"Version": "2012-10-17"}),
    "effect-maybe": policy({"Effect": "Maybe", "Principal": "*", "Action": "ecr:ListImages"}),
    "action-number": policy({"Effect": "Allow", "Principal": "*", "Action": 5}),
}


@pytest.mark.parametrize("text", NOT_POLICIES.values(), ids=NOT_POLICIES.keys())
def test_set_repository_policy_refuses_what_is_not_a_policy(
    ecr: Any, repository: str, text: str
) -> None:
    message = expect_error(
        INVALID, ecr.set_repository_policy, repositoryName=repository, policyText=text
    )
    assert message == INVALID_REPOSITORY_POLICY
    expect_error(
        "RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repository
    )


@pytest.mark.parametrize("text", NOT_POLICIES.values(), ids=NOT_POLICIES.keys())
def test_put_registry_policy_refuses_what_is_not_a_policy(server: EcrdServer, text: str) -> None:
    root = server.ecr_as(server.create_key(unique_account()))
    message = expect_error(INVALID, root.put_registry_policy, policyText=text)
    assert message == INVALID_REGISTRY_POLICY
    expect_error("RegistryPolicyNotFoundException", root.get_registry_policy)


def _log_line_with(server: EcrdServer, *parts: str) -> str | None:
    """The first server log line holding every one of `parts`, waiting a little for it."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if all(part in line for part in parts):
                return line
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def test_the_reason_a_policy_is_refused_is_in_the_debug_log(tmp_path: Path) -> None:
    # given a server logging at debug, and a repository on it
    server = EcrdServer(tmp_path / "data", extra_args=["--log-level", "debug"])
    server.start()
    try:
        ecr = server.ecr()
        name = unique_name()
        ecr.create_repository(repositoryName=name)

        # when a policy with an Effect of "Maybe" and a registry policy without Statement
        # are refused
        with pytest.raises(ClientError) as repository_refused:
            ecr.set_repository_policy(repositoryName=name, policyText=NOT_POLICIES["effect-maybe"])
        with pytest.raises(ClientError) as registry_refused:
            ecr.put_registry_policy(policyText=NOT_POLICIES["no-statement"])

        # then the log says why, under the request id the caller was given
        repository_request = repository_refused.value.response["ResponseMetadata"]["RequestId"]
        registry_request = registry_refused.value.response["ResponseMetadata"]["RequestId"]
        assert _log_line_with(server, repository_request, name, "Effect must be Allow or Deny")
        assert _log_line_with(server, registry_request, "Statement")
    finally:
        server.stop()
