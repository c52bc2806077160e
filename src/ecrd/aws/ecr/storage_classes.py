"""UpdateImageStorageClass: archive an image, or restore it to STANDARD."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import image_not_found, named_image
from ecrd.errors import ManifestNotFound
from ecrd.metadata.records import Registry, Repository


async def update_image_storage_class(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    image_id = params["imageId"]
    digest = await _digest_named(call, registry, repository, image_id)
    try:
        change = await call.services.storage_classes.update(
            repository, digest, params["targetStorageClass"]
        )
    except ManifestNotFound:  # deleted since it was looked up
        raise image_not_found(registry, repository, image_id) from None
    answered_id = {"imageDigest": change.digest}
    if image_id.get("imageTag") is not None:
        answered_id["imageTag"] = image_id["imageTag"]
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "imageId": answered_id,
        "imageStatus": change.status,
    }


async def _digest_named(
    call: Call, registry: Registry, repository: Repository, image_id: dict[str, Any]
) -> str:
    """The digest of the image `image_id` names (a tag, a digest, or both agreeing)."""
    digest, tag = named_image(image_id)
    if tag is not None:
        tagged = (await call.services.images.tagged(repository, [tag])).get(tag)
        if tagged is None or (digest is not None and tagged != digest):
            raise image_not_found(registry, repository, image_id)
        return tagged
    assert digest is not None
    return digest
