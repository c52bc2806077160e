"""Managed signing operations: the registry's signing configuration and each image's
signing status."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import digest_of


async def put_signing_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    configuration = await call.services.signing.put_configuration(
        registry, params["signingConfiguration"]
    )
    return {"signingConfiguration": configuration}


async def get_signing_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    configuration = await call.services.signing.configuration(registry)
    return {"registryId": registry.account_id, "signingConfiguration": configuration}


async def delete_signing_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    configuration = await call.services.signing.delete_configuration(registry)
    return {"registryId": registry.account_id, "signingConfiguration": configuration}


async def describe_image_signing_status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digest = await digest_of(call, registry, repository, params["imageId"])
    statuses = []
    for signature in await call.services.signing.of_image(registry, repository, digest):
        status: dict[str, Any] = {
            "signingProfileArn": signature.profile_arn,
            "status": signature.status,
        }
        if signature.status == "FAILED":
            status["failureCode"] = signature.failure_code or "SIGNING_ERROR"
            status["failureReason"] = signature.failure_reason or ""
        statuses.append(status)
    image_id = {"imageDigest": digest}
    if params["imageId"].get("imageTag") is not None:
        image_id["imageTag"] = params["imageId"]["imageTag"]
    return {
        "repositoryName": repository.name,
        "imageId": image_id,
        "registryId": registry.account_id,
        "signingStatuses": statuses,
    }
