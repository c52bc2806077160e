"""DescribeImageTags: each tag of a public repository with the image it points at."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.pagination import decode_token, encode_token

DEFAULT_PAGE_SIZE = 100


async def describe_image_tags(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _registry, repository = await call.repository(params)
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribeImageTags:{repository.id}"
    after = decode_token(scope, params.get("nextToken"))
    entries, has_more = await call.services.images.id_page(
        repository, "TAGGED", None if after is None else (after[0], after[1]), limit
    )
    digests = list(dict.fromkeys(digest for _id, digest, _tag in entries))
    images = {
        image.digest: image for image in await call.services.images.describe(repository, digests)
    }
    tag_names = [tag for _id, _digest, tag in entries if tag is not None]
    tagged_at = await call.services.images.tag_times(repository, tag_names)
    details = []
    for _manifest_id, digest, tag in entries:
        image = images[digest]
        detail: dict[str, Any] = {
            "imageDigest": image.digest,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at,
            "imageManifestMediaType": image.media_type,
        }
        artifact_media_type = image.config_media_type or image.artifact_type
        if artifact_media_type is not None:
            detail["artifactMediaType"] = artifact_media_type
        created_at = tagged_at.get(tag or "", image.pushed_at)
        details.append({"imageTag": tag, "createdAt": created_at, "imageDetail": detail})
    output: dict[str, Any] = {"imageTagDetails": details}
    if has_more:
        last_id, _digest, last_tag = entries[-1]
        output["nextToken"] = encode_token(scope, [last_id, last_tag or ""])
    return output
