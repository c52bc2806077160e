"""Image scanning operations: StartImageScan and DescribeImageScanFindings."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.images import digest_of
from ecrd.aws.ecr.scan_answers import findings_summary, scan_status
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ParameterInvalid
from ecrd.metadata.image_scans import COMPLETE

DEFAULT_FINDINGS = 100


async def start_image_scan(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digest = await digest_of(call, registry, repository, params["imageId"])
    manifest = await call.services.images.find(repository, None, digest)
    assert manifest is not None  # digest_of found it
    scan = await call.services.scanner.start(repository, manifest)
    image_id = {"imageDigest": digest, **_tag(params["imageId"])}
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "imageId": image_id,
        "imageScanStatus": scan_status(scan),
    }


async def describe_image_scan_findings(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    digest = await digest_of(call, registry, repository, params["imageId"])
    scan = await call.services.scanner.scan_of(repository, digest)
    output: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "imageId": {"imageDigest": digest, **_tag(params["imageId"])},
        "imageScanStatus": scan_status(scan),
    }
    if scan.status != COMPLETE or scan.findings is None:
        return output
    limit = params.get("maxResults", DEFAULT_FINDINGS)
    # A token names the findings it pages: a rescan (a new start, or a continuous scan's new
    # completion) makes older tokens invalid.
    completed = scan.completed_at.isoformat() if scan.completed_at else ""
    scope = (
        f"DescribeImageScanFindings:{repository.id}:{digest}:{scan.started_at.isoformat()}:"
        f"{completed}"
    )
    start = decode_token(scope, params.get("nextToken"), int) or 0
    if start < 0:
        raise ParameterInvalid("Invalid parameter at 'nextToken': the token is not valid")
    page = scan.findings[start : start + limit]
    output["imageScanFindings"] = {**(findings_summary(scan) or {}), "findings": page}
    if start + limit < len(scan.findings):
        output["nextToken"] = encode_token(scope, start + limit)
    return output


def _tag(image_id: dict[str, Any]) -> dict[str, str]:
    tag = image_id.get("imageTag")
    return {} if tag is None else {"imageTag": tag}
