"""Pushing to another registry over the OCI distribution protocol: what replication to another
installation needs (blobs, manifests, deletes), logged in with an ECR token.

    has_blob       HEAD /v2/<name>/blobs/<digest>
    push_blob      POST an upload, then one PUT ?digest= streaming the bytes (the spec's
                   "POST then PUT": no chunking, so any compliant registry takes it)
    put_manifest   PUT /v2/<name>/manifests/<reference>
    delete         DELETE /v2/<name>/manifests/<reference> (a tag, or a digest)
    tags_pointing  the repository's tags (paged /tags/list) that name a digest

Credentials come from a CredentialSource (EcrLogin); a 401 logs in again once, as a token
may have expired. Every failure is RemoteError, with `retry` saying whether another attempt
may succeed (the remote was out of reach or busy) or not (it refused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from ecrd.upstream.auth import CredentialSource
from ecrd.upstream.errors import UpstreamError, UpstreamUnavailable

# Every tag list page asks for this many; a repository with more is read page by page.
TAG_PAGE = 1000
MAX_TAG_PAGES = 1000


class RemoteError(Exception):
    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class RemotePusher:
    def __init__(
        self,
        base_url: str,
        login: CredentialSource,
        connect_timeout: float = 5,
        read_timeout: float = 60,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._login = login
        self._authorization: str | None = None
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def has_blob(self, repository: str, digest: str) -> bool:
        response = await self._send("HEAD", f"/v2/{_name(repository)}/blobs/{digest}")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise _failure(response, "HEAD blob")

    async def push_blob(
        self, repository: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        started = await self._send("POST", f"/v2/{_name(repository)}/blobs/uploads/")
        if started.status_code != 202 or "location" not in started.headers:
            raise _failure(started, "start upload")
        location = httpx.URL(self._base).join(started.headers["location"])
        if not _same_origin(location, httpx.URL(self._base)):
            # The login token goes to the registry's own origin only.
            raise RemoteError(f"start upload: Location {location} is another origin", False)
        finished = await self._send(
            "PUT",
            str(location.copy_merge_params({"digest": digest})),
            content=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            absolute=True,
            resend=False,  # the body streams once; a refused login is a retry of the whole
        )
        if finished.status_code != 201:
            raise _failure(finished, "finish upload")

    async def put_manifest(
        self, repository: str, reference: str, media_type: str, payload: bytes
    ) -> None:
        response = await self._send(
            "PUT",
            f"/v2/{_name(repository)}/manifests/{quote(reference, safe=':')}",
            content=payload,
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            raise _failure(response, f"PUT manifest {reference}")

    async def delete(self, repository: str, reference: str) -> bool:
        """Delete a tag or a manifest; False when the remote has no such thing."""
        response = await self._send(
            "DELETE", f"/v2/{_name(repository)}/manifests/{quote(reference, safe=':')}"
        )
        if response.status_code in (200, 202):
            return True
        if response.status_code == 404:
            return False
        raise _failure(response, f"DELETE {reference}")

    async def tags_pointing(self, repository: str, digest: str) -> list[str]:
        """The repository's tags that name `digest` (none when the repository is unknown)."""
        found: list[str] = []
        last: str | None = None
        for _page in range(MAX_TAG_PAGES):
            params = {"n": str(TAG_PAGE), **({"last": last} if last else {})}
            response = await self._send("GET", f"/v2/{_name(repository)}/tags/list", params=params)
            if response.status_code == 404:
                return found
            if response.status_code != 200:
                raise _failure(response, "list tags")
            tags = _tags_of(response)
            for tag in tags:
                head = await self._send(
                    "HEAD",
                    f"/v2/{_name(repository)}/manifests/{quote(tag)}",
                    headers={"Accept": "*/*"},
                )
                if head.headers.get("docker-content-digest") == digest:
                    found.append(tag)
            if len(tags) < TAG_PAGE:
                break
            last = tags[-1]
        return found

    async def _send(
        self,
        method: str,
        path: str,
        *,
        absolute: bool = False,
        resend: bool = True,
        **options: Any,
    ) -> httpx.Response:
        url = path if absolute else f"{self._base}{path}"
        for attempt in range(2):
            if self._authorization is None:
                self._authorization = await self._authorize()
            headers = {**options.pop("headers", {}), "Authorization": self._authorization}
            try:
                response = await self._http.request(method, url, headers=headers, **options)
            except httpx.HTTPError as error:
                raise RemoteError(f"{method} {path}: {error}", retry=True) from None
            if response.status_code != 401 or attempt or not resend:
                return response
            self._authorization = None  # the token may have expired: log in again once
            options["headers"] = headers
        raise AssertionError("unreachable")

    async def _authorize(self) -> str:
        try:
            credentials = await self._login()
        except UpstreamUnavailable as error:
            raise RemoteError(f"login: {error.message}", retry=True) from None
        except UpstreamError as error:  # refused, or an answer that makes no sense
            raise RemoteError(f"login: {error.message}", retry=False) from None
        if credentials is None:
            raise RemoteError("login: no credentials", retry=False)
        return credentials.header()


def _tags_of(response: httpx.Response) -> list[str]:
    try:
        document = response.json()
        tags = document.get("tags") or []
    except (ValueError, AttributeError):
        raise RemoteError("list tags: the answer is not a tag list", retry=True) from None
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise RemoteError("list tags: the answer is not a tag list", retry=True)
    return tags


def _same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    return (url.scheme, url.host, url.port) == (other.scheme, other.host, other.port)


def _name(repository: str) -> str:
    return quote(repository, safe="/")


def _failure(response: httpx.Response, what: str) -> RemoteError:
    # Refusals (4xx but 408/429) will not change on retry; anything else may.
    status = response.status_code
    retry = status >= 500 or status in (408, 429)
    detail = response.text[:300].replace("\n", " ")
    return RemoteError(f"{what}: {status} {detail}", retry=retry)
