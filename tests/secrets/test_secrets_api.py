"""The Secrets Manager API through boto3 against the real server: every implemented operation
and its modeled errors, with AWS's messages (the API reference, and AWS's answers quoted in
public issues: "Secrets Manager can't find the specified secret.", "You can't perform this
operation on the secret because it was marked for deletion.", "You can't create this secret
because a secret with this name is already scheduled for deletion.").

Every test names its secrets under a prefix of its own, so they share the session's server.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.api_errors import expect_error
from tests.conftest import (
    ACCOUNT_ID,
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
)
from tests.secrets.conftest import metadata_write, unique_name

NOT_FOUND = "ResourceNotFoundException"
INVALID_REQUEST = "InvalidRequestException"
INVALID_PARAMETER = "InvalidParameterException"
EXISTS = "ResourceExistsException"
CANT_FIND = "Secrets Manager can't find the specified secret."
MARKED = "You can't perform this operation on the secret because it was marked for deletion."
ARN = re.compile(
    rf"^arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:(?P<name>.+)-[A-Za-z0-9]{{6}}$"
)


def token() -> str:
    """A ClientRequestToken (the SDKs make a UUID when none is given)."""
    return str(uuid.uuid4())


def names(listed: dict[str, Any]) -> list[str]:
    return [entry["Name"] for entry in listed["SecretList"]]


# Create and read


def test_a_string_secret_is_read_back_by_name_arn_and_partial_arn(secrets: Any) -> None:
    name = unique_name("ecr-pullthroughcache")
    value = '{"username": "octo", "accessToken": "ghp_0123"}'
    created = secrets.create_secret(Name=name, SecretString=value, Description="GitHub")

    # the ARN is the name, a hyphen and six random characters, in the call's account and region
    match = ARN.match(created["ARN"])
    assert match is not None and match.group("name") == name
    assert created["Name"] == name
    for secret_id in (name, created["ARN"], created["ARN"][:-7]):
        read = secrets.get_secret_value(SecretId=secret_id)
        assert read["SecretString"] == value
        assert "SecretBinary" not in read
        assert read["ARN"] == created["ARN"]
        assert read["VersionId"] == created["VersionId"]
        assert read["VersionStages"] == ["AWSCURRENT"]


def test_a_binary_secret_is_read_back_as_bytes(secrets: Any) -> None:
    name = unique_name()
    data = bytes(range(256))
    secrets.create_secret(Name=name, SecretBinary=data)
    read = secrets.get_secret_value(SecretId=name)
    assert read["SecretBinary"] == data
    assert "SecretString" not in read


def test_a_value_is_a_string_or_binary_never_both(secrets: Any) -> None:
    name = unique_name()
    message = expect_error(
        INVALID_PARAMETER, secrets.create_secret, Name=name, SecretString="s", SecretBinary=b"b"
    )
    assert message == (
        "You can't specify both a binary secret value and a string secret value in the same secret."
    )
    expect_error(NOT_FOUND, secrets.describe_secret, SecretId=name)
    secrets.create_secret(Name=name, SecretString="s")
    expect_error(
        INVALID_PARAMETER,
        secrets.put_secret_value,
        SecretId=name,
        SecretString="s",
        SecretBinary=b"b",
    )
    expect_error(INVALID_PARAMETER, secrets.put_secret_value, SecretId=name)


def test_a_secret_made_without_value_has_no_current_version(secrets: Any) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name)
    assert "VersionId" not in created
    message = expect_error(NOT_FOUND, secrets.get_secret_value, SecretId=name)
    assert (
        message
        == "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"
    )
    assert "VersionIdsToStages" not in secrets.describe_secret(SecretId=name)


def test_names_are_checked_and_taken_once_per_account_and_region(secrets: Any) -> None:
    name = unique_name()
    secrets.create_secret(Name=name, SecretString="one")
    message = expect_error(EXISTS, secrets.create_secret, Name=name, SecretString="two")
    assert message == f"The operation failed because the secret {name} already exists."
    expect_error(INVALID_PARAMETER, secrets.create_secret, Name="bad name!", SecretString="v")
    # a region of its own: the same name is free there, and the first is not visible
    elsewhere = secrets_in(secrets, "eu-west-1")
    expect_error(NOT_FOUND, elsewhere.get_secret_value, SecretId=name)
    elsewhere.create_secret(Name=name, SecretString="three")
    assert elsewhere.get_secret_value(SecretId=name)["SecretString"] == "three"
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "one"


def secrets_in(secrets: Any, region: str) -> Any:
    import boto3

    return boto3.client(
        "secretsmanager",
        endpoint_url=secrets.meta.endpoint_url,
        region_name=region,
        aws_access_key_id=ROOT_ACCESS_KEY_ID,
        aws_secret_access_key=ROOT_SECRET_ACCESS_KEY,
    )


# Versions: ClientRequestToken and staging labels


def test_a_retried_token_with_the_same_value_changes_nothing(secrets: Any) -> None:
    name = unique_name()
    first = token()
    created = secrets.create_secret(Name=name, SecretString="v1", ClientRequestToken=first)
    # CreateSecret retried as is (Terraform retries with its own token) answers the same
    again = secrets.create_secret(Name=name, SecretString="v1", ClientRequestToken=first)
    assert (again["ARN"], again["VersionId"]) == (created["ARN"], first)
    # the same token with another value is refused, on create as on put
    expect_error(
        EXISTS, secrets.create_secret, Name=name, SecretString="v2", ClientRequestToken=first
    )
    message = expect_error(
        EXISTS, secrets.put_secret_value, SecretId=name, SecretString="v2", ClientRequestToken=first
    )
    assert message == "You can't modify an existing version, you can only create a new version."
    second = token()
    put = secrets.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=second)
    retried = secrets.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=second)
    assert put["VersionId"] == retried["VersionId"] == second
    assert retried["VersionStages"] == ["AWSCURRENT"]
    stages = secrets.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {first: ["AWSPREVIOUS"], second: ["AWSCURRENT"]}


def test_labels_move_and_versions_are_read_by_id_or_label(secrets: Any) -> None:
    name = unique_name()
    v1, v2, v3, pending = token(), token(), token(), token()
    secrets.create_secret(Name=name, SecretString="one", ClientRequestToken=v1)
    secrets.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=v2)
    secrets.put_secret_value(SecretId=name, SecretString="three", ClientRequestToken=v3)
    # AWSCURRENT moved to the newest, AWSPREVIOUS to the one before; the first has none left
    assert secrets.describe_secret(SecretId=name)["VersionIdsToStages"] == {
        v2: ["AWSPREVIOUS"],
        v3: ["AWSCURRENT"],
    }
    read = secrets.get_secret_value
    assert read(SecretId=name)["SecretString"] == "three"
    assert read(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "two"
    # a version without labels is still there by its id
    assert read(SecretId=name, VersionId=v1)["SecretString"] == "one"
    assert read(SecretId=name, VersionId=v1)["VersionStages"] == []
    # a value put under another label leaves AWSCURRENT where it was
    staged = secrets.put_secret_value(
        SecretId=name, SecretString="four", ClientRequestToken=pending, VersionStages=["AWSPENDING"]
    )
    assert staged["VersionStages"] == ["AWSPENDING"]
    assert read(SecretId=name)["SecretString"] == "three"
    assert read(SecretId=name, VersionStage="AWSPENDING")["VersionId"] == pending
    assert read(SecretId=name, VersionId=v3, VersionStage="AWSCURRENT")["SecretString"] == "three"
    # what names no version
    message = expect_error(NOT_FOUND, read, SecretId=name, VersionId=token())
    assert message.startswith("Secrets Manager can't find the specified secret value for VersionId")
    expect_error(NOT_FOUND, read, SecretId=name, VersionStage="NOPE")
    expect_error(NOT_FOUND, read, SecretId=name, VersionId=v1, VersionStage="AWSCURRENT")


# Describe, update, tags


def test_describe_shows_what_was_set_and_when(secrets: Any) -> None:
    name = unique_name()
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = secrets.create_secret(
        Name=name,
        SecretString="v",
        Description="the upstream's token",
        KmsKeyId="alias/ecrd",
        Tags=[{"Key": "team", "Value": "platform"}, {"Key": "empty", "Value": ""}],
    )
    described = secrets.describe_secret(SecretId=name)
    assert described["ARN"] == created["ARN"]
    assert described["Description"] == "the upstream's token"
    assert described["KmsKeyId"] == "alias/ecrd"
    assert sorted((tag["Key"], tag["Value"]) for tag in described["Tags"]) == [
        ("empty", ""),
        ("team", "platform"),
    ]
    assert described["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert before < described["CreatedDate"] <= described["LastChangedDate"]
    assert "DeletedDate" not in described and "LastAccessedDate" not in described
    # a read records the day (only the date, as AWS keeps it)
    secrets.get_secret_value(SecretId=name)
    accessed = secrets.describe_secret(SecretId=name)["LastAccessedDate"].astimezone(UTC)
    assert accessed == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def test_update_changes_the_description_and_adds_a_current_value(secrets: Any) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name, SecretString="old", Description="first")
    changed = secrets.describe_secret(SecretId=name)["LastChangedDate"]
    updated = secrets.update_secret(SecretId=name, Description="second")
    assert updated["ARN"] == created["ARN"] and "VersionId" not in updated
    described = secrets.describe_secret(SecretId=name)
    assert described["Description"] == "second"
    assert described["LastChangedDate"] > changed
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "old"
    with_value = secrets.update_secret(
        SecretId=name, SecretString="new", ClientRequestToken=token()
    )
    read = secrets.get_secret_value(SecretId=name)
    assert (read["SecretString"], read["VersionId"]) == ("new", with_value["VersionId"])
    assert (
        secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "old"
    )


def test_tags_are_added_replaced_and_removed(secrets: Any) -> None:
    name = unique_name()
    secrets.create_secret(Name=name, SecretString="v", Tags=[{"Key": "a", "Value": "1"}])
    secrets.tag_resource(
        SecretId=name, Tags=[{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}]
    )
    tags = {tag["Key"]: tag["Value"] for tag in secrets.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"a": "2", "b": "3"}
    secrets.untag_resource(SecretId=name, TagKeys=["a", "not-there"])
    assert secrets.describe_secret(SecretId=name)["Tags"] == [{"Key": "b", "Value": "3"}]
    secrets.untag_resource(SecretId=name, TagKeys=["b"])
    assert "Tags" not in secrets.describe_secret(SecretId=name)
    # keys AWS reserves, and more than 50 tags, are refused
    expect_error(
        INVALID_PARAMETER,
        secrets.tag_resource,
        SecretId=name,
        Tags=[{"Key": "aws:x", "Value": "v"}],
    )
    many = [{"Key": f"k{index}", "Value": "v"} for index in range(51)]
    expect_error(INVALID_PARAMETER, secrets.tag_resource, SecretId=name, Tags=many)
    assert "Tags" not in secrets.describe_secret(SecretId=name)


def test_every_operation_on_a_secret_that_does_not_exist_is_not_found(secrets: Any) -> None:
    missing = unique_name()
    calls: list[tuple[Any, dict[str, Any]]] = [
        (secrets.describe_secret, {}),
        (secrets.get_secret_value, {}),
        (secrets.put_secret_value, {"SecretString": "v"}),
        (secrets.update_secret, {"Description": "d"}),
        (secrets.tag_resource, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (secrets.untag_resource, {"TagKeys": ["k"]}),
        (secrets.restore_secret, {}),
        (secrets.delete_secret, {}),
        (secrets.get_resource_policy, {}),
    ]
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{missing}-AbCdEf"
    for call, arguments in calls:
        for secret_id in (missing, arn):
            assert expect_error(NOT_FOUND, call, SecretId=secret_id, **arguments) == CANT_FIND


def test_get_resource_policy_answers_that_there_is_none(secrets: Any) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name, SecretString="v")
    answer = secrets.get_resource_policy(SecretId=name)
    assert (answer["ARN"], answer["Name"]) == (created["ARN"], name)
    assert "ResourcePolicy" not in answer


# Deletion: the recovery window, restore, force, purge


def test_delete_schedules_the_deletion_and_the_secret_refuses_use_until_restored(
    secrets: Any,
) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name, SecretString="v")
    deleted = secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert (deleted["ARN"], deleted["Name"]) == (created["ARN"], name)
    expected = datetime.now(UTC) + timedelta(days=7)
    assert abs((deleted["DeletionDate"] - expected).total_seconds()) < 60
    # described, with its DeletedDate; every other use is refused as AWS words it
    assert "DeletedDate" in secrets.describe_secret(SecretId=name)
    refused: list[tuple[Any, dict[str, Any]]] = [
        (secrets.get_secret_value, {}),
        (secrets.put_secret_value, {"SecretString": "v2"}),
        (secrets.update_secret, {"Description": "d"}),
        (secrets.tag_resource, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (secrets.untag_resource, {"TagKeys": ["k"]}),
        (secrets.delete_secret, {"RecoveryWindowInDays": 7}),
    ]
    for call, arguments in refused:
        assert expect_error(INVALID_REQUEST, call, SecretId=name, **arguments) == MARKED
    # its name stays taken
    message = expect_error(INVALID_REQUEST, secrets.create_secret, Name=name, SecretString="v")
    assert message == (
        "You can't create this secret because a secret with this name is already scheduled "
        "for deletion."
    )
    # listed only when asked for
    prefix = {"Key": "name", "Values": [name]}
    assert names(secrets.list_secrets(Filters=[prefix])) == []
    assert names(secrets.list_secrets(Filters=[prefix], IncludePlannedDeletion=True)) == [name]
    # restored, it is as it was
    restored = secrets.restore_secret(SecretId=created["ARN"])
    assert restored["ARN"] == created["ARN"]
    assert "DeletedDate" not in secrets.describe_secret(SecretId=name)
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "v"
    # restoring one not scheduled changes nothing
    assert secrets.restore_secret(SecretId=name)["Name"] == name


def test_the_recovery_window_is_7_to_30_days_30_by_default_and_exclusive_of_force(
    secrets: Any,
) -> None:
    name = unique_name()
    secrets.create_secret(Name=name, SecretString="v")
    for days in (6, 31):
        message = expect_error(
            INVALID_PARAMETER, secrets.delete_secret, SecretId=name, RecoveryWindowInDays=days
        )
        assert (
            message == "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
        )
    message = expect_error(
        INVALID_PARAMETER,
        secrets.delete_secret,
        SecretId=name,
        RecoveryWindowInDays=7,
        ForceDeleteWithoutRecovery=True,
    )
    assert "ForceDeleteWithoutRecovery" in message and "RecoveryWindowInDays" in message
    deleted = secrets.delete_secret(SecretId=name)
    expected = datetime.now(UTC) + timedelta(days=30)
    assert abs((deleted["DeletionDate"] - expected).total_seconds()) < 60


def test_a_forced_delete_is_at_once_even_when_scheduled_or_missing(secrets: Any) -> None:
    name = unique_name()
    secrets.create_secret(Name=name, SecretString="v")
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=30)
    # a scheduled secret may still be deleted for good at once
    secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    expect_error(NOT_FOUND, secrets.describe_secret, SecretId=name)
    expect_error(NOT_FOUND, secrets.restore_secret, SecretId=name)
    # and the name is free again
    secrets.create_secret(Name=name, SecretString="again")
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "again"
    # forcing the deletion of a secret that does not exist is no error (the API reference)
    missing = unique_name()
    answer = secrets.delete_secret(SecretId=missing, ForceDeleteWithoutRecovery=True)
    assert answer["Name"] == missing
    assert expect_error(NOT_FOUND, secrets.delete_secret, SecretId=missing) == CANT_FIND


def test_a_secret_past_its_recovery_window_is_gone_and_its_name_free(
    server: EcrdServer, secrets: Any
) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name, SecretString="v")
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    # when the window has passed (the store is aged: nobody waits a week)
    aged = metadata_write(
        server,
        "UPDATE secrets SET purge_at = :past WHERE arn = :arn",
        past=datetime.now(UTC) - timedelta(seconds=1),
        arn=created["ARN"],
    )
    assert aged == 1
    # then it reads as gone, cannot be restored, and the name may be taken again
    expect_error(NOT_FOUND, secrets.describe_secret, SecretId=name)
    expect_error(NOT_FOUND, secrets.restore_secret, SecretId=name)
    again = secrets.create_secret(Name=name, SecretString="new")
    assert again["ARN"] != created["ARN"]
    # and the old row is deleted, versions and all
    left = server.metadata_query(
        "SELECT count(*) FROM secrets WHERE arn = :arn", arn=created["ARN"]
    )
    assert left == [(0,)]


# ListSecrets


def test_list_filters_by_name_description_tags_and_all(secrets: Any) -> None:
    prefix = unique_name("list")
    made = {
        "alpha": ("Database credentials", {"env": "prod"}),
        "beta": ("registry token", {"env": "dev", "team": "web"}),
        "Gamma": (None, {}),
    }
    for suffix, (description, tags) in made.items():
        arguments: dict[str, Any] = {"Name": f"{prefix}/{suffix}", "SecretString": "v"}
        if description:
            arguments["Description"] = description
        arguments["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        secrets.create_secret(**arguments)

    def listed(*filters: tuple[str, list[str]]) -> list[str]:
        given = [{"Key": "name", "Values": [prefix]}]
        given += [{"Key": key, "Values": values} for key, values in filters]
        return sorted(name.rsplit("/", 1)[1] for name in names(secrets.list_secrets(Filters=given)))

    assert listed() == ["Gamma", "alpha", "beta"]
    # name: a prefix, case-sensitive; values of one filter are alternatives
    assert listed(("name", [f"{prefix}/a", f"{prefix}/G"])) == ["Gamma", "alpha"]
    assert listed(("name", [f"{prefix}/g"])) == []
    # description: a prefix, not case-sensitive
    assert listed(("description", ["database"])) == ["alpha"]
    # tags: key and value prefixes; negation with !
    assert listed(("tag-key", ["te"])) == ["beta"]
    assert listed(("tag-value", ["pro"])) == ["alpha"]
    assert listed(("tag-key", ["!env"])) == ["Gamma"]
    assert listed(("tag-value", ["!dev"])) == ["Gamma", "alpha"]
    # all: the value's words anywhere in name, description or tags, not case-sensitive
    assert listed(("all", ["registryToken"])) == ["beta"]
    assert listed(("all", ["PROD"])) == ["alpha"]
    # no secret here belongs to another service
    assert listed(("owning-service", ["rds"])) == []


def test_list_sorts_and_pages_in_the_store(secrets: Any) -> None:
    prefix = unique_name("page")
    made = [f"{prefix}/{index:02d}" for index in range(7)]
    for name in reversed(made):  # created last to first: created-date order is reversed
        secrets.create_secret(Name=name, SecretString="v")
    by_name = [{"Key": "name", "Values": [prefix]}]
    assert names(secrets.list_secrets(Filters=by_name, SortBy="name")) == made
    assert (
        names(secrets.list_secrets(Filters=by_name, SortBy="name", SortOrder="desc")) == made[::-1]
    )
    assert names(secrets.list_secrets(Filters=by_name)) == made[::-1]  # by CreatedDate, asc
    # pages of 3 give every secret once, in order, and the last page has no NextToken
    seen: list[str] = []
    pages = 0
    arguments: dict[str, Any] = {"Filters": by_name, "SortBy": "name", "MaxResults": 3}
    while True:
        page = secrets.list_secrets(**arguments)
        pages += 1
        seen += names(page)
        if "NextToken" not in page:
            break
        arguments["NextToken"] = page["NextToken"]
    assert (seen, pages) == (made, 3)
    # the paginator boto3 users call does the same
    paginator = secrets.get_paginator("list_secrets")
    listed = [
        entry["Name"]
        for page in paginator.paginate(
            Filters=by_name, SortBy="name", PaginationConfig={"PageSize": 2}
        )
        for entry in page["SecretList"]
    ]
    assert listed == made
    # a token is only good for the listing it came from
    first = secrets.list_secrets(Filters=by_name, SortBy="name", MaxResults=3)
    expect_error(
        "InvalidNextTokenException",
        secrets.list_secrets,
        Filters=by_name,
        SortBy="created-date",
        MaxResults=3,
        NextToken=first["NextToken"],
    )
    expect_error("InvalidNextTokenException", secrets.list_secrets, NextToken="bm90IGEgdG9rZW4=")


def test_list_entries_carry_tags_labels_and_dates(secrets: Any) -> None:
    name = unique_name("entry")
    created = secrets.create_secret(
        Name=name, SecretString="v", Description="d", Tags=[{"Key": "k", "Value": "v"}]
    )
    (entry,) = secrets.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert entry["ARN"] == created["ARN"]
    assert entry["Description"] == "d"
    assert entry["Tags"] == [{"Key": "k", "Value": "v"}]
    assert entry["SecretVersionsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert entry["CreatedDate"] <= entry["LastChangedDate"]


# Accounts


def test_another_account_neither_sees_nor_reaches_a_secret(
    server: EcrdServer, secrets: Any
) -> None:
    name = unique_name()
    created = secrets.create_secret(Name=name, SecretString="mine")
    other = server.ecr_as(server.create_key("111111111111"), "secretsmanager")
    # by name it is the other account's own namespace: nothing there
    expect_error(NOT_FOUND, other.get_secret_value, SecretId=name)
    assert names(other.list_secrets(Filters=[{"Key": "name", "Values": [name]}])) == []
    # by ARN it is another account's resource, which no resource policy opens to it
    message = expect_error("AccessDeniedException", other.get_secret_value, SecretId=created["ARN"])
    assert message.startswith(
        "User: arn:aws:iam::111111111111:root is not authorized to perform: "
        f"secretsmanager:GetSecretValue on resource: {created['ARN']}"
    )


# The aws CLI, and what the log keeps


def test_the_aws_cli_creates_and_reads_a_secret(server: EcrdServer, tmp_path: Path) -> None:
    from tests.aws.test_cli import AwsCli

    aws = AwsCli(server, tmp_path)
    name = unique_name("ecr-pullthroughcache")
    value = '{"username":"cli-user","accessToken":"cli-token"}'
    created = aws.json("secretsmanager", "create-secret", "--name", name, "--secret-string", value)
    assert ARN.match(created["ARN"]) is not None
    read = aws.json("secretsmanager", "get-secret-value", "--secret-id", name)
    assert read["SecretString"] == value
    described = aws.json("secretsmanager", "describe-secret", "--secret-id", created["ARN"])
    assert described["Name"] == name
    missing = aws("secretsmanager", "get-secret-value", "--secret-id", unique_name(), check=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
    deleted = aws.json(
        "secretsmanager", "delete-secret", "--secret-id", name, "--force-delete-without-recovery"
    )
    assert deleted["Name"] == name


def test_no_value_reaches_the_server_log(server: EcrdServer, secrets: Any) -> None:
    value = f"never-logged-{uuid.uuid4().hex}"
    name = unique_name()
    secrets.create_secret(Name=name, SecretString=value)
    secrets.get_secret_value(SecretId=name)
    secrets.put_secret_value(SecretId=name, SecretString=value + "-2")
    # errors that carry the value in their request do not repeat it either
    expect_error(INVALID_PARAMETER, secrets.create_secret, Name=name + "!", SecretString=value)
    expect_error(EXISTS, secrets.create_secret, Name=name, SecretString=value)
    long_value = value + "x" * 65536
    expect_error(
        INVALID_PARAMETER, secrets.put_secret_value, SecretId=name, SecretString=long_value
    )
    assert value not in server.log_path.read_text()


def test_text_that_is_not_unicode_is_refused_naming_the_member(client: httpx.Client) -> None:
    # JSON's escape of a lone surrogate decodes to a str that no store can hold
    body = json.dumps({"Name": unique_name(), "SecretString": "x"}).replace('"x"', '"\\ud800"')
    response = client.post(
        "/",
        content=body,
        headers={
            "X-Amz-Target": "secretsmanager.CreateSecret",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == INVALID_PARAMETER
    assert "SecretString" in response.json()["message"]
