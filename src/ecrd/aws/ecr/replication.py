"""Replication operations: the registry's rules, each image's replication status, and
backfills of the images pushed before the rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import digest_of
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ParameterInvalid
from ecrd.metadata.replication_backfills import COMPLETE, FAILED, STOPPED, Backfill, BackfillResult

ENDED = (COMPLETE, FAILED, STOPPED)


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


# Replication backfills

DEFAULT_RESULTS = 100
DEFAULT_BACKFILLS = 50


async def start_replication_backfill(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    destination = params["destination"]
    backfill = await call.services.backfills.start(
        registry, (destination["registryId"], destination["region"])
    )
    return _summary(registry.account_id, backfill, with_progress=False)


async def stop_replication_backfill(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    backfill = await call.services.backfills.stop(registry, params["replicationBackfillId"])
    return _summary(registry.account_id, backfill, with_progress=False)


async def describe_replication_backfill_results(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    registry = await call.registry(params)
    backfill = await call.services.backfills.get(registry, params["replicationBackfillId"])
    output = _summary(registry.account_id, backfill, with_progress=True)
    if backfill.status not in ENDED:
        return output  # per-image results come once it has ended, as on ECR
    status = params.get("resultStatusFilter")
    limit = params.get("maxResults", DEFAULT_RESULTS)
    scope = f"DescribeReplicationBackfillResults:{backfill.id}:{status}"
    after = decode_token(scope, params.get("nextToken"), int)
    results = await call.services.backfills.results(backfill, status, after, limit + 1)
    output["results"] = [_result(result) for result in results[:limit]]
    if len(results) > limit:
        output["nextToken"] = encode_token(scope, results[limit - 1].position)
    return output


async def list_replication_backfills(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    limit = params.get("maxResults", DEFAULT_BACKFILLS)
    scope = f"ListReplicationBackfills:{registry.account_id}:{registry.region}"
    after = decode_token(scope, params.get("nextToken"), (str, str))
    position = None
    if after is not None:
        try:
            position = (datetime.fromisoformat(after[0]), after[1])
        except ValueError:
            raise ParameterInvalid(
                "Invalid parameter at 'nextToken': the token is not valid"
            ) from None
    found = await call.services.backfills.page(registry, position, limit + 1)
    output: dict[str, Any] = {
        "registryId": registry.account_id,
        "backfills": [
            _summary(registry.account_id, backfill, with_progress=True, listed=True)
            for backfill in found[:limit]
        ],
    }
    if len(found) > limit:
        last = found[limit - 1]
        output["nextToken"] = encode_token(scope, [last.started_at.isoformat(), last.id])
    return output


def _summary(
    account_id: str, backfill: Backfill, with_progress: bool, listed: bool = False
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "replicationBackfillId": backfill.id,
        "destination": {
            "region": backfill.destination_region,
            "registryId": backfill.destination_account,
        },
        "status": backfill.status,
        "startedAt": backfill.started_at,
    }
    if not listed:
        summary["registryId"] = account_id
    if not with_progress:
        return summary
    if backfill.failure_code is not None:
        summary["failureCode"] = backfill.failure_code
    if backfill.total is not None:
        summary["progress"] = {
            "totalReplicationCount": backfill.total,
            "completedReplicationCount": backfill.completed,
            "failedReplicationCount": backfill.failed,
            "failureCodes": list(backfill.failure_codes),
        }
    if backfill.ended_at is not None:
        summary["endedAt"] = backfill.ended_at
    return summary


def _result(result: BackfillResult) -> dict[str, Any]:
    image_id = {"imageDigest": result.digest}
    if result.tag is not None:
        image_id["imageTag"] = result.tag
    entry: dict[str, Any] = {
        "repositoryName": result.repository_name,
        "imageId": image_id,
        "status": result.status,
    }
    if result.failure_code is not None:
        entry["failureCode"] = result.failure_code
    return entry
