"""Sending to an upstream and reading what it answers: transport failures, bounded bodies, and
the error each failed answer is.

Shared by the registry requests (client.py) and the token endpoint (auth.py). Nothing here
looks at headers that carry credentials, and `where` names a URL without its query (a
presigned object-storage URL's query is a credential while it is valid).
"""

from __future__ import annotations

import httpx

from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.upstream.errors import (
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

# An error answer is read this far for its message; the rest is not worth the wait.
MAX_ERROR_BYTES = 64 * 1024
# How much of the upstream's own message an error carries.
MAX_MESSAGE_CHARS = 300
# The spec's error codes that mean: no such thing (some registries send them with a 400).
NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"})


def where(url: httpx.URL) -> str:
    """A URL as errors and logs may name it: scheme, host, port and path, no query."""
    return str(url.copy_with(query=None, fragment=None))


async def send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """The upstream's answer, its body still to be read (the caller closes it);
    UpstreamUnavailable when it cannot be had (refused, timed out, broken off, TLS)."""
    try:
        return await http.send(request, stream=True)
    except httpx.TimeoutException:
        raise UpstreamUnavailable(f"{where(request.url)}: timed out") from None
    except httpx.TransportError as error:
        # The exception's text names the failure (refused, reset, a certificate), not headers.
        reason = str(error) or type(error).__name__
        raise UpstreamUnavailable(f"{where(request.url)}: {reason}") from None


async def read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    """The whole body of `response`, at most `limit` bytes (UpstreamInvalid past it, before
    more is read); UpstreamUnavailable when it breaks off."""
    length = response.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise UpstreamInvalid(
            f"{where(response.url)}: the {what} is {int(length)} bytes, over the {limit} "
            "ecrd reads",
            response.status_code,
        )
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise UpstreamInvalid(
                    f"{where(response.url)}: the {what} is over the {limit} bytes ecrd reads",
                    response.status_code,
                )
            parts.append(chunk)
    except httpx.TimeoutException:
        raise UpstreamUnavailable(f"{where(response.url)}: timed out reading the {what}") from None
    except httpx.TransportError as error:
        raise UpstreamUnavailable(
            f"{where(response.url)}: the {what} broke off ({type(error).__name__})"
        ) from None
    return b"".join(parts)


async def failure(response: httpx.Response) -> UpstreamError:
    """The error a failed answer is, with the upstream's own message where it sent one (its
    body is read, bounded; the caller still closes the response)."""
    try:
        body = await read_bounded(response, MAX_ERROR_BYTES, "error answer")
    except UpstreamError:
        body = b""
    codes, message = error_envelope(body)
    status = response.status_code
    text = f"{where(response.url)}: {status}"
    if codes:
        text += f" {','.join(codes)}"
    if message:
        text += f" ({message})"
    if status in (401, 403):
        return UpstreamUnauthorized(text, status)
    if status == 404 or NOT_FOUND_CODES.intersection(codes):
        return UpstreamNotFound(text, status)
    if status == 429 or status >= 500 or "TOOMANYREQUESTS" in codes:
        return UpstreamUnavailable(text, status)
    return UpstreamError(text, status)


def error_envelope(body: bytes) -> tuple[list[str], str]:
    """The codes and first message of the spec's `{"errors": [{"code", "message"}]}`; nothing
    for a body of another shape. The message is cut and kept to printable text."""
    try:
        document = parse_json(body)
    except InputInvalid:
        return [], ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return [], ""
    codes = [
        e["code"] for e in errors[:10] if isinstance(e, dict) and isinstance(e.get("code"), str)
    ]
    messages = [e.get("message") for e in errors[:10] if isinstance(e, dict)]
    message = next((m for m in messages if isinstance(m, str) and m), "")
    printable = "".join(c if c.isprintable() else " " for c in message[:MAX_MESSAGE_CHARS])
    return [code[:64] for code in codes], printable
