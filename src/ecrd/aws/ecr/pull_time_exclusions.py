"""Pull-time update exclusions of the caller's registry: register, deregister, list.

The model checks `principalArn` (an IAM user or role ARN of at most 200 characters) before
these run; an exclusion names the principal exactly as its pulls are signed.
"""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ExclusionAlreadyExists, ExclusionNotFound, TooManyExclusions
from ecrd.metadata.records import Registry
from ecrd.registry.pull_time_exclusions import MAX_EXCLUSIONS

# ECR: "If this parameter is not used, then ListPullTimeUpdateExclusions returns up to 100
# results".
DEFAULT_PAGE_SIZE = 100


def _in_registry(registry: Registry) -> str:
    return f"in the registry with id '{registry.account_id}'"


async def register_pull_time_update_exclusion(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    principal_arn = params["principalArn"]
    try:
        created_at = await call.services.pull_time_exclusions.register(registry, principal_arn)
    except ExclusionAlreadyExists:
        raise AwsError(
            "ExclusionAlreadyExistsException",
            f"The pull time update exclusion for principal '{principal_arn}' already exists "
            + _in_registry(registry),
        ) from None
    except TooManyExclusions:
        raise AwsError(
            "LimitExceededException",
            f"The maximum number of pull time update exclusions ({MAX_EXCLUSIONS}) has been "
            f"reached {_in_registry(registry)}",
        ) from None
    return {"principalArn": principal_arn, "createdAt": created_at}


async def deregister_pull_time_update_exclusion(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    registry = await call.registry(params)
    principal_arn = params["principalArn"]
    try:
        await call.services.pull_time_exclusions.deregister(registry, principal_arn)
    except ExclusionNotFound:
        raise AwsError(
            "ExclusionNotFoundException",
            f"The pull time update exclusion for principal '{principal_arn}' does not exist "
            + _in_registry(registry),
        ) from None
    return {"principalArn": principal_arn}


async def list_pull_time_update_exclusions(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"ListPullTimeUpdateExclusions:{registry.account_id}:{registry.region}"
    after = decode_token(scope, params.get("nextToken"), str)
    arns, has_more = await call.services.pull_time_exclusions.page(registry, after, limit)
    output: dict[str, Any] = {"pullTimeUpdateExclusions": arns}
    if has_more:
        output["nextToken"] = encode_token(scope, arns[-1])
    return output
