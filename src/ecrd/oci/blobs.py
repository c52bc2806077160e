"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>, with single byte ranges."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ecrd.bounded_parsing import MAX_INTEGER, parse_decimal
from ecrd.errors import BlobNotFound
from ecrd.metadata.records import Blob
from ecrd.oci.requests import address_of, repository_to_read, services_of
from ecrd.oci.responses import StreamResponse
from ecrd.registry.pull_through import StreamedBlob

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$", re.ASCII)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end exclusive) for a satisfiable single range, None to send it all, or
    "unsatisfiable"."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # several ranges or a form we do not serve: the whole blob is allowed
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = _position(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size
    start = _position(first)
    end = size if last == "" else min(_position(last) + 1, size)
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


def _position(digits: str) -> int:
    """A byte position of a Range header (ASCII digits); past any blob's size when larger."""
    return parse_decimal(digits, MAX_INTEGER, clamp=True)


def _headers(blob: Blob) -> dict[str, str]:
    return {
        "Docker-Content-Digest": blob.digest,
        "ETag": f'"{blob.digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    digest = request.path_params["digest"]
    try:
        blob = await services.blobs.get(repository, digest)
    except BlobNotFound:
        # A pull-through cache fetches it from the upstream: a whole GET streams as it is
        # stored; a HEAD or a range waits for the whole blob.
        registry, _ = await address_of(request)
        whole = request.method == "GET" and "range" not in request.headers
        fetched = await services.pull_through.fetch_blob(registry, repository, digest, whole)
        if isinstance(fetched, StreamedBlob):
            return _streamed(fetched)
        blob = fetched
    headers = _headers(blob)
    redirect = await services.blobs.redirect_url(blob)
    if redirect is not None and request.method == "GET":
        return RedirectResponse(redirect, status_code=307, headers=headers)
    byte_range = _byte_range(request.headers.get("range"), blob.size)
    if byte_range == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{blob.size}"
        return Response(status_code=416, headers=headers)
    status = 200
    start, end = 0, blob.size
    if isinstance(byte_range, tuple):
        start, end = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamResponse(
        services.blobs.read(blob, start, end),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


def _streamed(fetched: StreamedBlob) -> Response:
    headers = {
        "Docker-Content-Digest": fetched.digest,
        "ETag": f'"{fetched.digest}"',
        "Cache-Control": "max-age=31536000",
    }
    if fetched.size is not None:
        headers["Content-Length"] = str(fetched.size)
    return StreamResponse(
        fetched.chunks, status_code=200, headers=headers, media_type="application/octet-stream"
    )


async def delete_blob(request: Request) -> Response:
    services = services_of(request)
    repository = await repository_to_read(request)
    await services.blobs.delete(repository, request.path_params["digest"])
    return Response(status_code=202, headers={"Content-Length": "0"})
