"""Replication operations: the registry's rules and each image's replication status."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import digest_of


async def put_replication_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    configuration = await call.services.replication.put_configuration(
        registry, params["replicationConfiguration"]
    )
    return {"replicationConfiguration": configuration}


async def describe_registry(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    return {
        "registryId": registry.account_id,
        "replicationConfiguration": await call.services.replication.configuration(registry),
    }


async def describe_image_replication_status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digest = await digest_of(call, registry, repository, params["imageId"])
    replications = await call.services.replication.of_image(registry, repository, digest)
    statuses = []
    for replication in replications:
        status: dict[str, Any] = {
            "region": replication.destination_region,
            "registryId": replication.destination_account,
            "status": replication.status,
        }
        if replication.status == "FAILED" and replication.failure_code:
            status["failureCode"] = replication.failure_code
        statuses.append(status)
    return {
        "repositoryName": repository.name,
        "imageId": {"imageDigest": digest, **_tag_of(params["imageId"])},
        "replicationStatuses": statuses,
    }


def _tag_of(image_id: dict[str, Any]) -> dict[str, str]:
    tag = image_id.get("imageTag")
    return {} if tag is None else {"imageTag": tag}
