"""Blob uploads: POST (start, monolithic, mount), PATCH, PUT, GET and DELETE."""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response

from ecrd.errors import RegistryError
from ecrd.metadata.records import Blob, Repository, Upload
from ecrd.oci.access import DOWNLOAD, allowed
from ecrd.oci.errors import OciError
from ecrd.oci.requests import (
    address_of,
    body_chunks,
    content_length,
    content_range_start,
    repository_to_read,
    repository_to_write,
    services_of,
)
from ecrd.registry.uploads import BodyInterrupted


def _upload_response(request: Request, upload: Upload, status: int) -> Response:
    return Response(
        status_code=status,
        headers={
            "Location": f"/v2/{request.path_params['name']}/blobs/uploads/{upload.id}",
            "Range": f"0-{max(upload.offset - 1, 0)}",
            "Docker-Upload-UUID": upload.id,
            "Content-Length": "0",
        },
    )


def _blob_created(request: Request, blob: Blob) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{request.path_params['name']}/blobs/{blob.digest}",
            "Docker-Content-Digest": blob.digest,
            "Content-Length": "0",
        },
    )


async def start_upload(request: Request) -> Response:
    services = services_of(request)
    mount_digest = request.query_params.get("mount")
    source_name = request.query_params.get("from")
    creates = getattr(request.state, "repository", None) is None
    if creates and not (mount_digest and source_name):
        # A push that would create its repository is refused before it does when the
        # registry is full (a mount needs no upload; an existing repository is checked when
        # the upload is added).
        registry, _name = await address_of(request)
        await services.uploads.check_room(registry)
    repository = await repository_to_write(request)
    if mount_digest and source_name:
        mounted = await _try_mount(request, repository, mount_digest, source_name)
        if mounted is not None:
            return _blob_created(request, mounted)
    digest = request.query_params.get("digest")
    upload = await services.uploads.start(repository)
    if digest is None:
        return _upload_response(request, upload, 202)
    # Monolithic upload: the whole blob in this one request, or nothing left behind.
    try:
        appended = await services.uploads.append(
            repository, upload.id, body_chunks(request), length=content_length(request)
        )
        blob = await services.uploads.finish(repository, upload.id, digest, appended)
    except (RegistryError, BodyInterrupted, OciError):
        await _cancel_quietly(request, repository, upload.id)
        raise
    return _blob_created(request, blob)


async def _try_mount(
    request: Request, repository: Repository, digest: str, source_name: str
) -> Blob | None:
    services = services_of(request)
    registry, _name = await address_of(request)
    # The registry's BLOB_MOUNTING account setting turned off: a plain upload instead.
    if not await services.account_settings.mounts_allowed(registry):
        return None
    address = await services.address(request.headers.get("host"), source_name)
    # A source that is missing, misnamed or not readable by the caller, or in another
    # registry (ECR mounts only within one): a plain upload instead.
    if address is None or address[0].id != registry.id:
        return None
    if not await allowed(request, DOWNLOAD, *address):
        return None
    try:
        source = await services.repositories.find(*address)
    except RegistryError:
        return None
    return await services.blobs.mount(repository, source, digest)


async def _cancel_quietly(request: Request, repository: Repository, upload_id: str) -> None:
    with contextlib.suppress(RegistryError):
        await services_of(request).uploads.cancel(repository, upload_id)


async def patch_upload(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    upload_id = request.path_params["upload_id"]
    start = content_range_start(request)
    upload = await services.uploads.append(
        repository, upload_id, body_chunks(request), start=start, length=content_length(request)
    )
    return _upload_response(request, upload, 202)


async def finish_upload(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    upload_id = request.path_params["upload_id"]
    digest = request.query_params.get("digest")
    if not digest:
        raise OciError(400, "DIGEST_INVALID", "the digest query parameter is required")
    length = content_length(request)
    start = content_range_start(request)
    appended = None
    if length or start is not None or "transfer-encoding" in request.headers:
        appended = await services.uploads.append(
            repository, upload_id, body_chunks(request), start=start, length=length
        )
    blob = await services.uploads.finish(repository, upload_id, digest, appended)
    return _blob_created(request, blob)


async def upload_status(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    upload = await services.uploads.get(repository, request.path_params["upload_id"])
    return _upload_response(request, upload, 204)


async def cancel_upload(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    await services.uploads.cancel(repository, request.path_params["upload_id"])
    return Response(status_code=204)
