"""One function per Secrets Manager operation on a secret; the rules are SecretService's.

Every secret is the caller's account's, in the region the call is signed for. Values never
reach a log: they leave only in GetSecretValue's answer (and errors never quote them).
"""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.errors import ParameterInvalid
from ecrd.metadata.secrets import SecretDetails, SecretRecord
from ecrd.registry.secrets import Written, value_of


def secret_output(details: SecretDetails, stages_member: str) -> dict[str, Any]:
    """A secret as DescribeSecret and ListSecrets show it (`stages_member` names the map of
    version ids to labels: VersionIdsToStages, SecretVersionsToStages)."""
    record = details.record
    output: dict[str, Any] = {
        "ARN": record.arn,
        "Name": record.name,
        "Description": record.description,
        "KmsKeyId": record.kms_key_id,
        "RotationEnabled": False,
        "LastChangedDate": record.changed_at,
        "LastAccessedDate": record.accessed_on,
        "DeletedDate": record.deleted_at,
        "CreatedDate": record.created_at,
        "PrimaryRegion": record.region,
    }
    if details.tags:
        output["Tags"] = [{"Key": key, "Value": value} for key, value in details.tags.items()]
    if details.stages:
        output[stages_member] = {
            version_id: list(stages) for version_id, stages in details.stages.items()
        }
    return output


def _tags(params: dict[str, Any]) -> dict[str, str]:
    tags = {}
    for tag in params.get("Tags", []):
        if "Key" not in tag:
            raise ParameterInvalid("A tag must have a Key.")
        tags[tag["Key"]] = tag.get("Value", "")
    return tags


def _written(written: Written) -> dict[str, Any]:
    output: dict[str, Any] = {"ARN": written.record.arn, "Name": written.record.name}
    if written.version_id is not None:
        output["VersionId"] = written.version_id
    return output


def _named(record: SecretRecord) -> dict[str, Any]:
    return {"ARN": record.arn, "Name": record.name}


async def create_secret(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("AddReplicaRegions"):
        raise ParameterInvalid("ecrd does not replicate secrets to other Regions.")
    written = await call.services.secrets.create(
        call.account_id,
        call.region,
        params["Name"],
        value_of(params.get("SecretString"), params.get("SecretBinary")),
        params.get("ClientRequestToken"),
        params.get("Description"),
        params.get("KmsKeyId"),
        _tags(params),
    )
    return _written(written)


async def describe_secret(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    details = await call.services.secrets.describe(call.account_id, call.region, params["SecretId"])
    return secret_output(details, "VersionIdsToStages")


async def get_secret_value(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    record, version = await call.services.secrets.get_value(
        call.account_id,
        call.region,
        params["SecretId"],
        params.get("VersionId"),
        params.get("VersionStage"),
    )
    return {
        **_named(record),
        "VersionId": version.version_id,
        "SecretString": version.value.text,
        "SecretBinary": version.value.binary,
        "VersionStages": list(version.stages),
        "CreatedDate": version.created_at,
    }


async def put_secret_value(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    if "RotationToken" in params:
        raise ParameterInvalid("ecrd does not rotate secrets: RotationToken is not supported.")
    written = await call.services.secrets.put_value(
        call.account_id,
        call.region,
        params["SecretId"],
        value_of(params.get("SecretString"), params.get("SecretBinary")),
        params.get("ClientRequestToken"),
        params.get("VersionStages"),
    )
    return {**_written(written), "VersionStages": list(written.stages)}


async def update_secret(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    changes = {
        column: params[member]
        for member, column in (("Description", "description"), ("KmsKeyId", "kms_key_id"))
        if member in params
    }
    written = await call.services.secrets.update(
        call.account_id,
        call.region,
        params["SecretId"],
        changes,
        value_of(params.get("SecretString"), params.get("SecretBinary")),
        params.get("ClientRequestToken"),
    )
    return _written(written)


async def delete_secret(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    arn, name, deletion_date = await call.services.secrets.delete(
        call.account_id,
        call.region,
        params["SecretId"],
        params.get("RecoveryWindowInDays"),
        params.get("ForceDeleteWithoutRecovery", False),
    )
    return {"ARN": arn, "Name": name, "DeletionDate": deletion_date}


async def restore_secret(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    record = await call.services.secrets.restore(call.account_id, call.region, params["SecretId"])
    return _named(record)


async def tag_resource(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await call.services.secrets.tag(call.account_id, call.region, params["SecretId"], _tags(params))
    return {}


async def untag_resource(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await call.services.secrets.untag(
        call.account_id, call.region, params["SecretId"], params["TagKeys"]
    )
    return {}


async def get_resource_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """ecrd keeps no resource policies on secrets (PutResourcePolicy is not supported), so
    there is never one to show; Terraform reads this after every change to a secret."""
    details = await call.services.secrets.describe(call.account_id, call.region, params["SecretId"])
    return _named(details.record)
