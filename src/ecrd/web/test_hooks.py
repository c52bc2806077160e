"""Hooks for tests only: unless `test_hooks` is set, no route here exists (they answer 404).

    POST /_ecrd/test/image-times   {"registryId"?, "region"?, "repositoryName", "imageDigest",
                                    "imagePushedAt"?, "lastRecordedPullTime"?,
                                    "lastArchivedAt"?}

sets those times of one image (epoch seconds or ISO 8601; null clears the two that may be
empty), so that lifecycle rules counted in days can be tested without waiting days. Whoever
reaches the server may call it, with no credentials: it rewrites what lifecycle policies
decide on, which is why it is never on outside tests.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.digests import Digest, is_valid_digest
from ecrd.metadata.lifecycle import ImageTimes, LifecycleStore
from ecrd.registry.services import RegistryServices
from ecrd.settings import Settings

IMAGE_TIMES_PATH = "/_ecrd/test/image-times"
MAX_BODY_BYTES = 16 * 1024
_MEMBERS = {
    "registryId",
    "region",
    "repositoryName",
    "imageDigest",
    "imagePushedAt",
    "lastRecordedPullTime",
    "lastArchivedAt",
}
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_REGION = re.compile(r"[a-z0-9-]{1,32}", re.ASCII)
# The largest epoch second datetime takes (9999-12-31T23:59:59Z).
_MAX_EPOCH_SECONDS = 253402300799


class HookInputInvalid(ValueError):
    """A request the hook refuses (400); the message says why."""


def test_hook_routes(settings: Settings) -> list[BaseRoute]:
    """The test hooks' routes when `test_hooks` is on, else none at all."""
    if not settings.test_hooks:
        return []
    return [Route(IMAGE_TIMES_PATH, ImageTimesHook(settings).answer, methods=["POST"])]


class ImageTimesHook:
    def __init__(self, settings: Settings) -> None:
        self._default_account = settings.account_id
        self._default_region = settings.region

    async def answer(self, request: Request) -> Response:
        services: RegistryServices = request.app.state.services
        try:
            body = await _read_body(request)
            arguments = _arguments(body, self._default_account, self._default_region)
        except HookInputInvalid as error:
            return _message(400, str(error))
        account_id, region, name, digest, times = arguments
        missing = await LifecycleStore(services.database).set_image_times(
            account_id, region, name, digest, times
        )
        if missing == "repository":
            return _message(
                404, f"no repository {name!r} in the registry of {account_id} in {region}"
            )
        if missing == "image":
            return _message(404, f"no image {digest} in the repository {name!r}")
        answer: dict[str, Any] = {
            "registryId": account_id,
            "region": region,
            "repositoryName": name,
            "imageDigest": digest,
        }
        for member, moment, cleared in (
            ("imagePushedAt", times.pushed_at, False),
            ("lastRecordedPullTime", times.last_pulled_at, times.clear_last_pulled_at),
            ("lastArchivedAt", times.last_archived_at, times.clear_last_archived_at),
        ):
            if moment is not None:
                answer[member] = moment.timestamp()
            elif cleared:
                answer[member] = None
        return JSONResponse(answer)


def _message(status: int, text: str) -> Response:
    return JSONResponse({"message": text}, status_code=status)


async def _read_body(request: Request) -> bytes:
    received = bytearray()
    try:
        async for chunk in request.stream():
            received += chunk
            if len(received) > MAX_BODY_BYTES:
                raise HookInputInvalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    except ClientDisconnect:
        raise HookInputInvalid("the body ended early") from None
    return bytes(received)


def _arguments(
    body: bytes, default_account: str, default_region: str
) -> tuple[str, str, str, str, ImageTimes]:
    try:
        document = parse_json(body)
    except InputInvalid as error:
        raise HookInputInvalid(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise HookInputInvalid("the body must be a JSON object")
    unknown = sorted(set(document) - _MEMBERS)
    if unknown:
        raise HookInputInvalid(f"unknown members {unknown}; known: {sorted(_MEMBERS)}")
    account_id = _text(document, "registryId", _ACCOUNT, "12 digits") or default_account
    region = _text(document, "region", _REGION, "a region name") or default_region
    name = document.get("repositoryName")
    if not isinstance(name, str) or not 2 <= len(name) <= 256:
        raise HookInputInvalid("repositoryName must be a repository name (2 to 256 characters)")
    digest = document.get("imageDigest")
    if not isinstance(digest, str) or not is_valid_digest(digest):
        raise HookInputInvalid("imageDigest must be an image digest (sha256:<64 hex digits>)")
    if "imagePushedAt" in document and document["imagePushedAt"] is None:
        raise HookInputInvalid("imagePushedAt cannot be null: every image has a push time")
    pulled = _time(document, "lastRecordedPullTime")
    archived = _time(document, "lastArchivedAt")
    times = ImageTimes(
        pushed_at=_time(document, "imagePushedAt"),
        last_pulled_at=pulled,
        clear_last_pulled_at=pulled is None and "lastRecordedPullTime" in document,
        last_archived_at=archived,
        clear_last_archived_at=archived is None and "lastArchivedAt" in document,
    )
    if not any(member in document for member in ("imagePushedAt", *_NULLABLE_TIMES)):
        raise HookInputInvalid(
            "nothing to set: give imagePushedAt, lastRecordedPullTime or lastArchivedAt"
        )
    return account_id, region, name, str(Digest.parse(digest)), times


_NULLABLE_TIMES = ("lastRecordedPullTime", "lastArchivedAt")


def _text(document: dict[str, Any], member: str, pattern: re.Pattern[str], what: str) -> str:
    value = document.get(member)
    if value is None:
        return ""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise HookInputInvalid(f"{member} must be {what}")
    return value


def _time(document: dict[str, Any], member: str) -> datetime | None:
    """A time given as epoch seconds or ISO 8601 (UTC unless it names a zone)."""
    value = document.get(member)
    if value is None:
        return None
    if isinstance(value, bool):
        raise HookInputInvalid(f"{member} must be epoch seconds or an ISO 8601 time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= _MAX_EPOCH_SECONDS:
            raise HookInputInvalid(f"{member} must be epoch seconds from 0 to {_MAX_EPOCH_SECONDS}")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise HookInputInvalid(f"{member} must be epoch seconds or an ISO 8601 time: {value!r:.80}")
