"""Reading OCI requests: the repository addressed, bounded bodies, and pagination."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from starlette.requests import ClientDisconnect, Request

from ecrd.bounded_parsing import InputInvalid, parse_decimal
from ecrd.errors import NameInvalid, RepositoryNotFound
from ecrd.metadata.records import Registry, Repository
from ecrd.oci.errors import OciError
from ecrd.registry.services import RegistryServices
from ecrd.registry.uploads import BodyInterrupted

MAX_PAGE_SIZE = 1000
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$", re.ASCII)


def services_of(request: Request) -> RegistryServices:
    services: RegistryServices = request.app.state.services
    return services


async def registry_of(request: Request) -> Registry:
    """The registry a request addresses: by its Host, and for a path naming a repository by
    the path too (`<alias>/<name>` is a public repository)."""
    if "name" in request.path_params:
        return (await address_of(request))[0]
    return await services_of(request).registry_for_host(request.headers.get("host"))


async def address_of(request: Request) -> tuple[Registry, str]:
    """(registry, repository name) of the path's name; NAME_UNKNOWN for an unknown alias."""
    known: tuple[Registry, str] | None = getattr(request.state, "address", None)
    if known is not None:
        return known
    # Routing sees the decoded path, where `a%2fb` has become `a/b`: another name than the
    # client wrote. No part of a /v2/ path may hold an encoded slash, so refuse it.
    if b"%2f" in request.scope.get("raw_path", b"").lower():
        raise NameInvalid("an encoded slash (%2F) is not allowed in a repository name")
    path_name = request.path_params["name"]
    address = await services_of(request).address(request.headers.get("host"), path_name)
    if address is None:
        raise RepositoryNotFound(f"no public registry serves {path_name!r}")
    request.state.address = address
    return address


async def repository_to_read(request: Request) -> Repository:
    """The repository named in the path; the one authorization looked up when it did."""
    known: Repository | None = getattr(request.state, "repository", None)
    if known is not None:
        return known
    registry, name = await address_of(request)
    return await services_of(request).repositories.find(registry, name)


async def repository_to_write(request: Request) -> Repository:
    """The repository a push writes into (made on ECR's behalf when missing); refused where a
    pull-through cache rule covers it."""
    registry, name = await address_of(request)
    services = services_of(request)
    await services.pull_through_rules.refuse_push(registry, name)
    known: Repository | None = getattr(request.state, "repository", None)
    if known is not None:
        return known
    return await services.repositories.for_push(registry, name)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away ends it with BodyInterrupted."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BodyInterrupted("client disconnected") from None


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The whole body if it is at most `limit` bytes, else None (read no further than that)."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return parse_decimal(value.strip())
    except InputInvalid:
        raise OciError(400, "SIZE_INVALID", f"invalid Content-Length {value[:50]!r}") from None


def content_range_start(request: Request) -> int | None:
    """Start offset of a PATCH's Content-Range, checked against its Content-Length."""
    value = request.headers.get("content-range")
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        raise OciError(416, "BLOB_UPLOAD_INVALID", f"invalid Content-Range {value[:50]!r}")
    try:
        start, end = parse_decimal(match.group(1)), parse_decimal(match.group(2))
    except InputInvalid:
        message = f"invalid Content-Range {value[:50]!r}"
        raise OciError(416, "BLOB_UPLOAD_INVALID", message) from None
    length = content_length(request)
    if end < start or (length is not None and end - start + 1 != length):
        raise OciError(
            416, "BLOB_UPLOAD_INVALID", f"Content-Range {value!r} does not match Content-Length"
        )
    return start


def page(request: Request) -> tuple[int, str | None]:
    """The `n` (bounded) and `last` query parameters of a paginated list."""
    number = request.query_params.get("n")
    if not number:  # an empty n= means none, as in Distribution
        limit = MAX_PAGE_SIZE
    else:
        try:
            limit = parse_decimal(number, MAX_PAGE_SIZE, clamp=True)
        except InputInvalid:
            raise OciError(400, "PAGINATION_NUMBER_INVALID", f"invalid n {number[:50]!r}") from None
    return limit, request.query_params.get("last") or None


def next_link(path: str, limit: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": limit, "last": last})}>; rel="next"'
