"""Image operations: put, get, delete, describe, list, referrers."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.scan_answers import findings_summary, scan_status
from ecrd.aws.errors import AwsError
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.digests import Digest, is_valid_digest
from ecrd.errors import ManifestReferenced, MediaTypeMissing, ParameterInvalid, RegistryError
from ecrd.metadata.image_scans import ImageScan
from ecrd.metadata.images import ImageSummary
from ecrd.metadata.records import Manifest, Registry, Repository, utcnow
from ecrd.metadata.storage_classes import ACTIVATING, ACTIVE, activated_at, status_of

DEFAULT_PAGE_SIZE = 100
DEFAULT_REFERRERS_PAGE_SIZE = 50
# What ECR answers for a manifest that names no media type when the request names none either
# (seen by everyone who re-tags an OCI image or Helm chart with put-image; not in the API
# reference). Clients match on it to fall back to another format, so it is kept word for word.
MEDIA_TYPE_MISSING = (
    "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
)
logger = logging.getLogger("ecrd.aws")


def _image_output(registry: Registry, repository: Repository, manifest: Manifest, tag: str | None
                  ) -> dict[str, Any]:  # fmt: skip
    image_id = {"imageDigest": manifest.digest}
    if tag is not None:
        image_id["imageTag"] = tag
    return {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "imageId": image_id,
        "imageManifest": manifest.payload.decode(),
        "imageManifestMediaType": manifest.media_type,
    }


def _failure(image_id: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": image_id, "failureCode": code, "failureReason": reason}


def _malformed_image_id(image_id: dict[str, Any]) -> dict[str, Any] | None:
    """The failure for an image id that names nothing usable, or None when it is fine."""
    digest = image_id.get("imageDigest")
    if digest is None and image_id.get("imageTag") is None:
        return _failure(
            image_id,
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        )
    if digest is not None and not is_valid_digest(digest):
        return _failure(image_id, "InvalidImageDigest", "Invalid image digest")
    return None


def named_image(image_id: dict[str, Any]) -> tuple[str | None, str | None]:
    """(digest, tag) an image id names, the digest canonical; ParameterInvalid in ECR's words
    when it names neither, or the digest is malformed (for operations that take one image id
    and fail as a whole)."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if digest is None and tag is None:
        raise ParameterInvalid("Invalid request parameters: both tag and digest cannot be null")
    if digest is not None:
        if not is_valid_digest(digest):
            raise ParameterInvalid(
                "Invalid parameter at 'imageDigest' failed to satisfy constraint: "
                f"'Invalid image digest {digest[:200]}'"
            )
        digest = str(Digest.parse(digest))
    return digest, tag


def _tag_mismatch(image_id: dict[str, Any]) -> dict[str, Any]:
    return _failure(
        image_id,
        "ImageTagDoesNotMatchDigest",
        "Invalid request parameters: image tag digest did not match image digest",
    )


async def put_image(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await call.services.pull_through_rules.refuse_push(
        await call.registry(params), params["repositoryName"]
    )
    registry, repository = await call.repository(params)
    tag = params.get("imageTag")
    try:
        stored = await call.services.images.put(
            registry,
            repository,
            params["imageManifest"].encode(),
            params.get("imageManifestMediaType"),
            tag,
            params.get("imageDigest"),
            require_references=call.settings.strict_references,
            pusher=call.principal,
        )
    except MediaTypeMissing as missing:
        logger.debug("request %s: PutImage refused: %s", call.request_id, missing.message)
        raise ParameterInvalid(MEDIA_TYPE_MISSING) from None
    return {"image": _image_output(registry, repository, stored.manifest, tag)}


async def _pull_through(call: Call, params: dict[str, Any]) -> None:
    """Where a pull-through cache rule covers the repository, fetch what the upstream has of
    the images asked for (what it lacks is answered as failures below)."""
    registry = await call.registry(params)
    name = params["repositoryName"]
    if await call.services.pull_through_rules.covering(registry, name) is None:
        return
    for image_id in params["imageIds"]:
        reference = image_id.get("imageDigest") or image_id.get("imageTag")
        if isinstance(reference, str):
            with contextlib.suppress(RegistryError):
                await call.services.pull_through.find_for_pull(registry, name, reference)


async def batch_get_image(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await _pull_through(call, params)
    registry, repository = await call.repository(params)
    accepted = params.get("acceptedMediaTypes")
    images: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    wanted = [image_id for image_id in params["imageIds"] if _malformed_image_id(image_id) is None]
    # All of them in two statements, rather than one per image id.
    by_tag, by_digest = await call.services.images.find_many(
        repository,
        [image_id["imageTag"] for image_id in wanted if "imageTag" in image_id],
        [image_id["imageDigest"] for image_id in wanted if "imageTag" not in image_id],
    )
    for image_id in params["imageIds"]:
        tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
        malformed = _malformed_image_id(image_id)
        if malformed is not None:
            failures.append(malformed)
            continue
        manifest = by_tag.get(tag) if tag is not None else by_digest.get(digest or "")
        if manifest is not None and digest is not None and manifest.digest != digest:
            # The tag names another image than the digest given.
            failures.append(_tag_mismatch(image_id))
            continue
        if manifest is None:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
            continue
        status = status_of(manifest.image_status, manifest.last_activated_at, utcnow())
        if status != ACTIVE:
            # ECR's failure code for an image it has but will not hand out; an archived
            # image is pulled again once restored.
            state = "being restored" if status == ACTIVATING else "archived"
            failures.append(_failure(image_id, "ImageInaccessible", f"Requested image is {state}"))
            continue
        if accepted is not None and manifest.media_type not in accepted:
            failures.append(
                _failure(
                    image_id,
                    "ImageNotFound",
                    f"Requested image is a {manifest.media_type}, which is not among the "
                    "accepted media types",
                )
            )
            continue
        images.append(_image_output(registry, repository, manifest, tag))
        call.services.images.record_pull(repository, manifest, call.principal)
    return {"images": images, "failures": failures}


async def batch_delete_image(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _registry, repository = await call.repository(params)
    deleted: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for image_id in params["imageIds"]:
        tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
        malformed = _malformed_image_id(image_id)
        if malformed is not None:
            failures.append(malformed)
            continue
        if tag is not None and digest is not None:
            tagged = await call.services.images.tagged(repository, [tag])
            if tagged.get(tag) not in (None, str(Digest.parse(digest))):
                failures.append(_tag_mismatch(image_id))
                continue
        try:
            if tag is not None:
                deletion = await call.services.images.delete_by_tag(repository, tag)
            else:
                deletion = await call.services.images.delete_by_digest(
                    repository, str(Digest.parse(str(digest)))
                )
        except ManifestReferenced as error:
            failures.append(
                _failure(
                    image_id,
                    "ImageReferencedByManifestList",
                    f"Requested image referenced by manifest list: [{error.index_digest}]",
                )
            )
            continue
        if deletion is None:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
            continue
        if deletion.tags:
            deleted.extend({"imageDigest": deletion.digest, "imageTag": t} for t in deletion.tags)
        else:
            deleted.append({"imageDigest": deletion.digest})
    return {"imageIds": deleted, "failures": failures}


def image_detail(registry: Registry, repository: Repository, image: ImageSummary,
                 scan: ImageScan | None = None) -> dict[str, Any]:  # fmt: skip
    now = utcnow()
    detail: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "imageDigest": image.digest,
        "imageSizeInBytes": image.size,
        "imagePushedAt": image.pushed_at,
        "imageManifestMediaType": image.media_type,
        "imageStatus": status_of(image.image_status, image.last_activated_at, now),
    }
    if image.last_archived_at is not None:
        detail["lastArchivedAt"] = image.last_archived_at
    last_activated_at = activated_at(image.image_status, image.last_activated_at, now)
    if last_activated_at is not None:
        detail["lastActivatedAt"] = last_activated_at
    if image.tags:
        detail["imageTags"] = list(image.tags)
    artifact_media_type = image.config_media_type or image.artifact_type
    if artifact_media_type is not None:
        detail["artifactMediaType"] = artifact_media_type
    if image.last_pulled_at is not None:
        detail["lastRecordedPullTime"] = image.last_pulled_at
    if image.subject_digest is not None:
        detail["subjectManifestDigest"] = image.subject_digest
    if scan is not None:
        detail["imageScanStatus"] = scan_status(scan)
        summary = findings_summary(scan)
        if summary is not None:
            detail["imageScanFindingsSummary"] = summary
    return detail


def _describe_image_id(image_id: dict[str, Any]) -> str:
    digest = image_id.get("imageDigest")
    tag = image_id.get("imageTag")
    digest_text = f"'{digest}'" if digest is not None else "'null'"
    tag_text = f"'{tag}'" if tag is not None else "'null'"
    return f"{{imageDigest:{digest_text}, imageTag:{tag_text}}}"


def _filters(params: dict[str, Any]) -> tuple[str, str]:
    """(tag status, image status): ANY and, as ECR documents, ACTIVE when not given."""
    requested = params.get("filter") or {}
    return requested.get("tagStatus", "ANY"), requested.get("imageStatus", ACTIVE)


async def describe_images(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    image_ids = params.get("imageIds")
    if image_ids is not None:
        if "maxResults" in params or "nextToken" in params or "filter" in params:
            raise ParameterInvalid(
                "maxResults, nextToken and filter cannot be used together with imageIds"
            )
        return {"imageDetails": await _describe_by_ids(call, registry, repository, image_ids)}
    tag_status, image_status = _filters(params)
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribeImages:{repository.id}:{tag_status}:{image_status}"
    after = decode_token(scope, params.get("nextToken"), int)
    page = await call.services.images.page(repository, tag_status, after, limit, image_status)
    scans = await call.services.scanner.of_images(
        repository, [image.digest for image in page.images]
    )
    output: dict[str, Any] = {
        "imageDetails": [
            image_detail(registry, repository, image, scans.get(image.digest))
            for image in page.images
        ]
    }
    if page.has_more:
        output["nextToken"] = encode_token(scope, page.images[-1].id)
    return output


async def _describe_by_ids(
    call: Call, registry: Registry, repository: Repository, image_ids: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    tags = [i["imageTag"] for i in image_ids if i.get("imageTag") is not None]
    tag_digests = await call.services.images.tagged(repository, tags) if tags else {}
    wanted: list[str] = []
    for image_id in image_ids:
        tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
        if digest is not None and not is_valid_digest(digest):
            raise ParameterInvalid(
                f"Invalid parameter at 'imageDigest' failed to satisfy constraint: "
                f"'Invalid image digest {digest[:200]}'"
            )
        resolved = str(Digest.parse(digest)) if digest is not None else tag_digests.get(tag or "")
        if resolved is None or (tag is not None and tag_digests.get(tag) != resolved):
            raise image_not_found(registry, repository, image_id)
        wanted.append(resolved)
    found = {
        image.digest: image for image in await call.services.images.describe(repository, wanted)
    }
    details = []
    for image_id, digest in zip(image_ids, wanted, strict=True):
        if digest not in found:
            raise image_not_found(registry, repository, image_id)
    scans = await call.services.scanner.of_images(repository, list(dict.fromkeys(wanted)))
    for digest in dict.fromkeys(wanted):
        details.append(image_detail(registry, repository, found[digest], scans.get(digest)))
    return details


async def digest_of(
    call: Call, registry: Registry, repository: Repository, image_id: dict[str, Any]
) -> str:
    """The digest an imageId (tag, digest or both) names in the repository; ECR's
    ImageNotFoundException when it names none."""
    details = await _describe_by_ids(call, registry, repository, [image_id])
    return str(details[0]["imageDigest"])


def image_not_found(registry: Registry, repository: Repository, image_id: dict[str, Any]
                    ) -> AwsError:  # fmt: skip
    return AwsError(
        "ImageNotFoundException",
        f"The image with imageId {_describe_image_id(image_id)} does not exist within the "
        f"repository with name '{repository.name}' in the registry with id "
        f"'{registry.account_id}'",
    )


async def list_images(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _registry, repository = await call.repository(params)
    tag_status, image_status = _filters(params)
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"ListImages:{repository.id}:{tag_status}:{image_status}"
    after = decode_token(scope, params.get("nextToken"), (int, str))
    entries, has_more = await call.services.images.id_page(
        repository,
        tag_status,
        None if after is None else (after[0], after[1]),
        limit,
        image_status,
    )
    image_ids = []
    for _manifest_id, digest, tag in entries:
        image_id = {"imageDigest": digest}
        if tag is not None:
            image_id["imageTag"] = tag
        image_ids.append(image_id)
    output: dict[str, Any] = {"imageIds": image_ids}
    if has_more:
        last_id, _digest, last_tag = entries[-1]
        output["nextToken"] = encode_token(scope, [last_id, last_tag or ""])
    return output


async def list_image_referrers(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    _registry, repository = await call.repository(params)
    subject = params["subjectId"]["imageDigest"]
    if not is_valid_digest(subject):
        raise ParameterInvalid(
            "Invalid parameter at 'subjectId.imageDigest' failed to satisfy constraint: "
            "'Invalid image digest'"
        )
    requested = params.get("filter") or {}
    artifact_types = requested.get("artifactTypes")
    # As ECR documents: only ACTIVE artifacts unless the filter names another status.
    artifact_status = requested.get("artifactStatus", ACTIVE)
    limit = params.get("maxResults", DEFAULT_REFERRERS_PAGE_SIZE)
    scope = (
        f"ListImageReferrers:{repository.id}:{subject}:{json.dumps(artifact_types)}"
        f":{artifact_status}"
    )
    after = decode_token(scope, params.get("nextToken"), str)
    found = await call.services.manifests.referrers(
        repository, subject, artifact_types, after, limit + 1, artifact_status
    )
    now = utcnow()
    referrers = []
    for manifest in found[:limit]:
        referrer: dict[str, Any] = {
            "digest": manifest.digest,
            "mediaType": manifest.media_type,
            "size": len(manifest.payload),
            "artifactStatus": status_of(manifest.image_status, manifest.last_activated_at, now),
        }
        if manifest.artifact_type is not None:
            referrer["artifactType"] = manifest.artifact_type
        if manifest.annotations_json is not None:
            referrer["annotations"] = json.loads(manifest.annotations_json)
        referrers.append(referrer)
    output: dict[str, Any] = {"referrers": referrers}
    if len(found) > limit:
        output["nextToken"] = encode_token(scope, found[limit - 1].digest)
    return output
