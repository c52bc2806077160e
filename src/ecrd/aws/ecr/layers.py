"""Layer operations: the API's way to push blobs, over the data plane's upload service."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.digests import Digest, is_valid_digest
from ecrd.errors import BlobNotFound, DigestMismatch, UploadOutOfOrder
from ecrd.registry.layers import PART_SIZE


async def batch_check_layer_availability(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _registry, repository = await call.repository(params)
    layers: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for digest in params["layerDigests"]:
        if not is_valid_digest(digest):
            failures.append(
                {
                    "layerDigest": digest,
                    "failureCode": "InvalidLayerDigest",
                    "failureReason": "Invalid layer digest",
                }
            )
            continue
        blob = await call.services.layers.available(repository, str(Digest.parse(digest)))
        if blob is None:
            failures.append(
                {
                    "layerDigest": digest,
                    "failureCode": "MissingLayerDigest",
                    "failureReason": "Could not find layer",
                }
            )
        else:
            layers.append(
                {"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": blob.size}
            )
    return {"layers": layers, "failures": failures}


async def initiate_layer_upload(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    await call.services.pull_through_rules.refuse_push(registry, repository.name)
    upload = await call.services.layers.initiate(repository)
    return {"uploadId": upload.id, "partSize": PART_SIZE}


async def upload_layer_part(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    upload_id = params["uploadId"]
    try:
        upload = await call.services.layers.upload_part(
            repository,
            upload_id,
            params["partFirstByte"],
            params["partLastByte"],
            params["layerPartBlob"],
        )
    except UploadOutOfOrder as error:
        raise AwsError(
            "InvalidLayerPartException",
            error.message,
            registryId=registry.account_id,
            repositoryName=repository.name,
            uploadId=upload_id,
            lastValidByteReceived=error.offset - 1,
        ) from None
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "uploadId": upload.id,
        "lastByteReceived": upload.offset - 1,
    }


async def complete_layer_upload(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digests = params["layerDigests"]
    if len(set(digests)) != 1:
        raise AwsError("InvalidLayerException", "An upload completes as exactly one layer digest")
    try:
        blob = await call.services.layers.complete(
            registry, repository, params["uploadId"], digests[0]
        )
    except DigestMismatch as error:
        raise AwsError("InvalidLayerException", error.message) from None
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "uploadId": params["uploadId"],
        "layerDigest": blob.digest,
    }


async def get_download_url_for_layer(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digest = params["layerDigest"]
    if not is_valid_digest(digest):
        raise AwsError(
            "InvalidParameterException",
            "Invalid parameter at 'layerDigest' failed to satisfy constraint: 'Invalid digest'",
        )
    try:
        blob = await call.services.blobs.get(repository, digest)
    except BlobNotFound:
        raise AwsError(
            "LayersNotFoundException",
            f"The layer with digest '{digest}' does not exist in the repository with name "
            f"'{repository.name}' in the registry with id '{registry.account_id}'",
        ) from None
    url = await call.services.blobs.download_url(blob)
    if url is None:
        # Like ECR's S3 URL, it works without credentials until it expires.
        path = f"/v2/{repository.name}/blobs/{blob.digest}"
        url = f"{call.registry_url(registry)}{path}?{await call.services.tokens.presign(path)}"
    return {"downloadUrl": url, "layerDigest": blob.digest}
