"""GET, HEAD, PUT and DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ecrd.auth.principals import Principal
from ecrd.errors import ManifestNotFound, ManifestTooLarge, TagInvalid
from ecrd.metadata.records import Manifest
from ecrd.oci.requests import (
    address_of,
    bounded_body,
    repository_to_read,
    repository_to_write,
    services_of,
)
from ecrd.registry import media_types
from ecrd.settings import Settings

# Tags one manifest PUT may apply with `?tag=`; ECR's limit on tags per image is 1000.
MAX_TAGS_PER_PUT = 100


def _accepted_types(request: Request) -> set[str]:
    accepted: set[str] = set()
    for line in request.headers.getlist("accept"):
        for item in line.split(","):
            media_type = item.split(";")[0].strip().lower()
            if media_type:
                accepted.add(media_type)
    return accepted


def _check_acceptable(request: Request, manifest: Manifest) -> None:
    """Refuse, as CNCF Distribution does, a manifest kind the client says it cannot read.

    A client that names no manifest type at all (or `*/*`) gets whatever is stored.
    """
    accepted = _accepted_types(request)
    if not accepted & media_types.ALL_MANIFESTS or "*/*" in accepted:
        return
    if manifest.media_type in accepted:
        return
    raise ManifestNotFound(
        f"manifest is {manifest.media_type}, which the Accept header does not include"
    )


async def get_manifest(request: Request) -> Response:
    services = services_of(request)
    registry, name = await address_of(request)
    # Where a pull-through cache rule covers the name, from the upstream when not stored.
    repository, manifest = await services.pull_through.find_for_pull(
        registry, name, request.path_params["reference"], getattr(request.state, "pull", None)
    )
    _check_acceptable(request, manifest)
    headers = {
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.payload)),
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=manifest.media_type)
    # Who pulled decides whether the pull is recorded (the registry's pull-time exclusions).
    principal: Principal | None = getattr(request.state, "principal", None)
    services.manifests.record_pull(repository, manifest, principal)
    return Response(manifest.payload, headers=headers, media_type=manifest.media_type)


async def put_manifest(request: Request) -> Response:
    services = services_of(request)
    limit = services.manifests.max_manifest_bytes
    payload = await bounded_body(request, limit)
    if payload is None:
        raise ManifestTooLarge(f"manifest exceeds {limit} bytes")
    settings: Settings = request.app.state.settings
    # Distribution Spec 1.2: `?tag=` (repeatable) tags a manifest pushed by digest.
    extra_tags = list(dict.fromkeys(request.query_params.getlist("tag")))
    if len(extra_tags) > MAX_TAGS_PER_PUT:
        raise TagInvalid(f"at most {MAX_TAGS_PER_PUT} tag parameters may be given")
    # Checked before the repository is looked up, so a refused push creates none.
    push = services.manifests.prepare_put(
        request.path_params["reference"],
        request.headers.get("content-type"),
        payload,
        extra_tags,
    )
    repository = await repository_to_write(request)
    # The spec lets a registry accept manifests whose blobs it lacks; ECR does not.
    stored = await services.manifests.store_prepared(
        repository,
        push,
        require_references=settings.strict_references,
        pusher=getattr(request.state, "principal", None),
    )
    manifest = stored.manifest
    headers = {
        "Location": f"/v2/{request.path_params['name']}/manifests/{manifest.digest}",
        "Docker-Content-Digest": manifest.digest,
        "Content-Length": "0",
    }
    if manifest.subject_digest is not None:
        headers["OCI-Subject"] = manifest.subject_digest
    response = Response(status_code=201, headers=headers)
    for tag in extra_tags:  # one header per tag, as the spec shows it
        response.headers.append("OCI-Tag", tag)
    return response


async def delete_manifest(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    await services.manifests.delete(repository, request.path_params["reference"])
    return Response(status_code=202, headers={"Content-Length": "0"})
