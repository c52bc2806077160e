"""Lifecycle policies: put, get, delete, and previews of what a policy would do."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import named_image
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ParameterInvalid
from ecrd.lifecycle.policy import LifecyclePolicyInvalid
from ecrd.metadata.lifecycle import (
    LifecyclePolicyRecord,
    PreviewResultRecord,
    PreviewSummaryRecord,
)
from ecrd.metadata.records import Registry, Repository
from ecrd.registry.lifecycle import PreviewQuery

# GetLifecyclePolicyPreview "returns up to 100 results and a nextToken value, if applicable"
# without maxResults (the API reference).
DEFAULT_PREVIEW_PAGE_SIZE = 100


def invalid_policy(error: LifecyclePolicyInvalid) -> ParameterInvalid:
    """ECR's wording for a lifecycle policy it will not take; the reason is the parser's."""
    return ParameterInvalid(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        f"'Lifecycle policy validation failure: {error.message}'"
    )


async def put_lifecycle_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    try:
        policy_text = await call.services.lifecycle.put_policy(
            repository, params["lifecyclePolicyText"]
        )
    except LifecyclePolicyInvalid as error:
        raise invalid_policy(error) from None
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "lifecyclePolicyText": policy_text,
    }


async def get_lifecycle_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    record = await call.services.lifecycle.policy(registry, repository)
    return _policy_output(registry, repository, record)


async def delete_lifecycle_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    record = await call.services.lifecycle.delete_policy(registry, repository)
    return _policy_output(registry, repository, record)


def _policy_output(
    registry: Registry, repository: Repository, record: LifecyclePolicyRecord
) -> dict[str, Any]:
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "lifecyclePolicyText": record.text,
        "lastEvaluatedAt": record.evaluated_at,
    }


async def start_lifecycle_policy_preview(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    try:
        record = await call.services.lifecycle.start_preview(
            registry, repository, params.get("lifecyclePolicyText")
        )
    except LifecyclePolicyInvalid as error:
        raise invalid_policy(error) from None
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "lifecyclePolicyText": record.policy_text,
        "status": record.status,
    }


async def get_lifecycle_policy_preview(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    image_ids = params.get("imageIds")
    if image_ids is not None and ("maxResults" in params or "nextToken" in params):
        # "This option cannot be used when you specify images with imageIds."
        raise ParameterInvalid("maxResults and nextToken cannot be used together with imageIds")
    tag_status = (params.get("filter") or {}).get("tagStatus", "ANY")
    wanted = tuple(named_image(image_id) for image_id in image_ids or ())
    record = await call.services.lifecycle.preview(registry, repository)
    # A token is bound to the preview it pages (by its start): one of an earlier preview of
    # the repository is refused rather than read against another answer.
    scope = (
        f"GetLifecyclePolicyPreview:{repository.id}:{tag_status}:"
        f"{record.started_at.timestamp():.6f}"
    )
    query = PreviewQuery(
        tag_status=tag_status,
        after_position=decode_token(scope, params.get("nextToken"), int),
        limit=params.get("maxResults", DEFAULT_PREVIEW_PAGE_SIZE),
        image_ids=wanted,
    )
    page_of = await call.services.lifecycle.preview_page(repository, record, query)
    output: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "lifecyclePolicyText": page_of.policy_text,
        "status": page_of.status,
        "previewResults": [_result(result) for result in page_of.results],
    }
    if page_of.summary is not None:
        output["summary"] = _summary(page_of.summary)
    if page_of.has_more:
        output["nextToken"] = encode_token(scope, page_of.results[-1].position)
    return output


def _result(result: PreviewResultRecord) -> dict[str, Any]:
    action: dict[str, Any] = {"type": result.action_type}
    if result.target_storage_class is not None:
        action["targetStorageClass"] = result.target_storage_class
    entry: dict[str, Any] = {
        "imageDigest": result.image_digest,
        "imagePushedAt": result.image_pushed_at,
        "action": action,
        "appliedRulePriority": result.applied_rule_priority,
        "storageClass": result.storage_class,
    }
    if result.image_tags:
        entry["imageTags"] = list(result.image_tags)
    return entry


def _summary(summary: PreviewSummaryRecord) -> dict[str, Any]:
    rendered: dict[str, Any] = {"expiringImageTotalCount": summary.expiring}
    if summary.transitioning:
        rendered["transitioningImageTotalCounts"] = [
            {"targetStorageClass": target, "imageTotalCount": count}
            for target, count in sorted(summary.transitioning.items())
        ]
    return rendered
