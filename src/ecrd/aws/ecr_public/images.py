"""DescribeImageTags: each tag of a public repository with the image it points at."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import image_detail
from ecrd.aws.ecr_public.narrowing import narrow
from ecrd.aws.pagination import decode_token, encode_token

DEFAULT_PAGE_SIZE = 100


async def describe_image_tags(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribeImageTags:{repository.id}"
    after = decode_token(scope, params.get("nextToken"), (int, str))
    page, has_more = await call.services.images.tagged_page(
        repository, None if after is None else (after[0], after[1]), limit
    )
    details = [
        {
            "imageTag": entry.tag,
            "createdAt": entry.tagged_at,
            "imageDetail": image_detail(registry, repository, entry.image),
        }
        for entry in page
    ]
    output: dict[str, Any] = {"imageTagDetails": details}
    if has_more:
        output["nextToken"] = encode_token(scope, list(page[-1].position))
    # ECR's image detail, less the members ECR Public's ReferencedImageDetail lacks.
    return dict(narrow(call.operation.output_shape, output))
