"""An async client for one upstream OCI registry: manifests, blobs and referrers, behind
whatever auth flow the upstream challenges with (none, Basic, or Bearer tokens).

The first request goes without credentials; a 401 names the scheme, and the request is sent
once more with Basic credentials or a Bearer token for the repository's pull scope. The
challenge is remembered, so later requests carry credentials (or fetch their scope's token)
from the start. A 401 to a request that carried them runs the flow once more with a fresh
token (or the credentials asked for again); a second 401 is UpstreamUnauthorized. Nothing else
is retried: a failure is raised at once, for the caller to decide on (it may have a cached
copy to serve).

One pooled httpx.AsyncClient per UpstreamClient. Redirects (blobs served from object storage)
are followed here, at most MAX_REDIRECTS, and the registry's Authorization goes to the
registry's own origin only, never to the host a redirect leads to (a presigned URL carries
its own credential, and must not be handed the registry's). Neither credentials nor tokens
are ever logged.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import ecrd
from ecrd.bounded_parsing import InputInvalid, parse_json
from ecrd.digests import Digest
from ecrd.errors import DigestInvalid, NameInvalid, TagInvalid
from ecrd.names import check_repository_name, check_tag
from ecrd.upstream.answers import failure, read_bounded, send, where
from ecrd.upstream.auth import (
    BasicCredentials,
    BearerTokens,
    Challenge,
    CredentialSource,
    usable_challenge,
)
from ecrd.upstream.errors import (
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

__all__ = [
    "BasicCredentials",
    "CredentialSource",
    "UpstreamBlob",
    "UpstreamClient",
    "UpstreamDescriptor",
    "UpstreamManifest",
]

logger = logging.getLogger("ecrd.upstream")

DEFAULT_USER_AGENT = f"ecrd/{ecrd.__version__} (pull-through cache)"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Redirects one request follows (a registry to its object storage is one).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Blob bodies are handed on in pieces of this size, as ecrd's own blob reads are.
BLOB_CHUNK_BYTES = 1024 * 1024
# Content types that say nothing about which manifest a body is.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


@dataclass(frozen=True)
class UpstreamManifest:
    """A manifest as the upstream served it: its exact bytes, their media type, and the
    sha256 digest of the bytes (checked against the reference when it was a digest, and
    against the upstream's Docker-Content-Digest)."""

    body: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class UpstreamDescriptor:
    """What a reference names upstream, without its body."""

    digest: str
    media_type: str
    size: int


class UpstreamBlob:
    """A blob's body as it arrives; valid inside `UpstreamClient.blob`'s `async with`.

    The bytes are not checked against the digest here: the caller hashes them anyway as it
    stores them (and refuses a mismatch)."""

    def __init__(self, response: httpx.Response, size: int | None) -> None:
        self._response = response
        # Content-Length, or None when the upstream did not say (or sent it compressed).
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces of up to BLOB_CHUNK_BYTES; UpstreamUnavailable when it breaks
        off (shorter than its Content-Length, a reset, a read timeout)."""
        try:
            async for chunk in self._response.aiter_bytes(BLOB_CHUNK_BYTES):
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"{where(self._response.url)}: timed out") from None
        except httpx.TransportError as error:
            raise UpstreamUnavailable(
                f"{where(self._response.url)}: the blob broke off ({type(error).__name__})"
            ) from None


class UpstreamClient:
    """The upstream registry at `base_url` (`http://` or `https://`, host and port only).

    `credentials` is asked when a challenge needs them. TLS is verified against the system's
    CAs, or `ca_file`'s. `max_manifest_bytes` bounds what a manifest (or referrers index)
    may be. Names and references are checked against the spec's grammar; a malformed one
    is the caller's bug (ValueError), never sent."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource | None = None,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_manifest_bytes: int = 4 * 1024 * 1024,
        ca_file: str | Path | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self._base = _registry_url(base_url)
        self.base_url = str(self._base).rstrip("/")
        self._credentials = credentials
        self._max_manifest_bytes = max_manifest_bytes
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout
            ),
            verify=verify,
            follow_redirects=False,  # followed in _follow, to keep Authorization at home
            # Identity: the bytes on the wire are then the manifest's or blob's own, and
            # Content-Length (of a HEAD too) their size.
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
        )
        # The challenge the upstream answered with last (None: none yet, or it asks none).
        self._challenge: Challenge | None = None
        self._tokens = BearerTokens(self._http, self._base)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the operations ------------------------------------------------------------------

    async def check(self, repository: str | None = None) -> None:
        """GET /v2/ through the auth flow (with a token for `repository`'s pull scope when
        given): returns when the upstream answers and takes the credentials; raises
        UpstreamUnauthorized when it refuses them, UpstreamUnavailable when it is down."""
        scope = _pull_scope(repository) if repository is not None else None
        response = await self._request("GET", "/v2/", scope, {})
        try:
            if not 200 <= response.status_code < 300:
                raise await self._failure(response)
        finally:
            await response.aclose()

    async def manifest(
        self, repository: str, reference: str, accept: Sequence[str]
    ) -> UpstreamManifest:
        """GET a manifest by tag or digest, asking for the media types `accept` lists."""
        path = _manifest_path(repository, reference)
        response = await self._request("GET", path, _pull_scope(repository), _accept(accept))
        try:
            if response.status_code != 200:
                raise await self._failure(response)
            body = await read_bounded(response, self._max_manifest_bytes, "manifest")
        finally:
            await response.aclose()
        return _manifest_of(response, body, reference)

    async def manifest_digest(
        self, repository: str, reference: str, accept: Sequence[str]
    ) -> UpstreamDescriptor:
        """HEAD a manifest: its digest, media type and size, without its body (a cheap check
        of whether a tag moved; Docker Hub does not count HEADs against its rate limit).
        Where the HEAD leaves any of them out, the manifest is fetched (GET) instead."""
        path = _manifest_path(repository, reference)
        response = await self._request("HEAD", path, _pull_scope(repository), _accept(accept))
        try:
            if response.status_code != 200:
                raise await self._failure(response)
        finally:
            await response.aclose()
        announced = _announced_digest(response)
        if ":" in reference:
            wanted = Digest.parse(reference)
            if announced is None and wanted.algorithm == "sha256":
                announced = str(wanted)
            same_algorithm = announced is not None and announced.startswith(wanted.algorithm)
            if same_algorithm and announced != str(wanted):
                raise UpstreamInvalid(
                    f"{where(response.url)}: HEAD of {wanted} announced {announced}"
                )
        length = response.headers.get("content-length", "")
        media_type = _content_type(response)
        if (
            announced is None
            or not announced.startswith("sha256:")  # the descriptor's digest is sha256
            or not (length.isascii() and length.isdigit())
            or media_type in _GENERIC_TYPES
        ):
            logger.debug("HEAD %s told too little; fetching the manifest", where(response.url))
            fetched = await self.manifest(repository, reference, accept)
            return UpstreamDescriptor(fetched.digest, fetched.media_type, len(fetched.body))
        return UpstreamDescriptor(announced, media_type, int(length))

    @contextlib.asynccontextmanager
    async def blob(self, repository: str, digest: str) -> AsyncIterator[UpstreamBlob]:
        """GET a blob, following redirects: `async with client.blob(name, digest) as blob:`
        then `blob.size` and `async for chunk in blob.chunks()`. The body is never buffered
        whole; leaving the block closes the connection's use."""
        path = f"/v2/{_repository(repository)}/blobs/{_digest(digest)}"
        response = await self._request("GET", path, _pull_scope(repository), {})
        try:
            if response.status_code != 200:
                raise await self._failure(response)
            length = response.headers.get("content-length", "")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            size = int(length) if length.isascii() and length.isdigit() and not encoded else None
            yield UpstreamBlob(response, size)
        finally:
            await response.aclose()

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors of what refers to manifest `digest` (signatures, SBOMs, ...): the
        OCI referrers API's index; where the upstream answers 404 to that, the tag schema's
        index under `<alg>-<hex>`; [] when neither has any."""
        subject = _digest(digest)
        path = f"/v2/{_repository(repository)}/referrers/{subject}"
        scope = _pull_scope(repository)
        response = await self._request("GET", path, scope, {"Accept": OCI_INDEX})
        try:
            if response.status_code == 200:
                body = await read_bounded(response, self._max_manifest_bytes, "referrers index")
                return _descriptors(body, where(response.url))
            if response.status_code != 404:
                raise await self._failure(response)
        finally:
            await response.aclose()
        # The spec's fallback for registries without the API: an index tagged with the digest.
        algorithm, _, hex_digits = subject.partition(":")
        try:
            index = await self.manifest(
                repository, f"{algorithm[:32]}-{hex_digits[:64]}", [OCI_INDEX]
            )
        except UpstreamNotFound:
            return []
        return _descriptors(index.body, f"{self.base_url}{path}")

    # --- requests and the auth flow ------------------------------------------------------

    async def _request(
        self, method: str, path: str, scope: str | None, headers: dict[str, str]
    ) -> httpx.Response:
        """The upstream's answer to `method path` through the auth flow, its body unread (the
        caller closes it). A 401 after the flow ran is UpstreamUnauthorized."""
        url = self._base.join(path)
        authorization = await self._known_authorization(scope)
        for attempt in range(2):
            response = await self._follow(method, url, headers, authorization)
            if response.status_code != 401 or not _same_origin(response.url, self._base):
                return response
            challenge = usable_challenge(response.headers.get_list("www-authenticate"))
            refused = await failure(response)
            await response.aclose()
            if attempt == 1 or challenge is None:
                detail = "the credentials" if authorization else "a request without credentials"
                if challenge is None:
                    detail += " and offers neither a Basic nor a Bearer challenge"
                raise UpstreamUnauthorized(f"{refused.message}: it refused {detail}", 401)
            self._challenge = challenge
            authorization = await self._answer(challenge, scope, authorization)
        raise AssertionError("unreachable")  # the second turn returns or raises

    async def _known_authorization(self, scope: str | None) -> str | None:
        """What to send from the start, by the challenge seen last: Basic credentials, or
        the scope's token (fetched now when none is kept); None before any challenge."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            login = await self._login()
            return None if login is None else login.header()
        # The remembered challenge's own scope was another request's: not this one's.
        key = self._tokens.key(challenge, scope if scope is not None else "")
        return "Bearer " + await self._tokens.token(key, self._credentials)

    async def _answer(self, challenge: Challenge, scope: str | None, rejected: str | None) -> str:
        """The Authorization that answers `challenge`, renewed: not `rejected`."""
        if challenge.scheme == "basic":
            login = await self._login()
            if login is None:
                raise UpstreamUnauthorized(
                    f"{self.base_url} asks for credentials (Basic) and none are configured", 401
                )
            if login.header() == rejected:
                raise UpstreamUnauthorized(f"{self.base_url} refused the credentials", 401)
            return login.header()
        key = self._tokens.key(challenge, scope)
        stale = rejected.removeprefix("Bearer ") if rejected else None
        return "Bearer " + await self._tokens.token(key, self._credentials, rejected=stale)

    async def _login(self) -> BasicCredentials | None:
        return await self._credentials() if self._credentials is not None else None

    async def _follow(
        self, method: str, url: httpx.URL, headers: dict[str, str], authorization: str | None
    ) -> httpx.Response:
        """Send, following up to MAX_REDIRECTS redirects; Authorization only to the
        registry's origin."""
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorization is not None and _same_origin(url, self._base):
                sent["Authorization"] = authorization
            response = await send(self._http, self._http.build_request(method, url, headers=sent))
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            await response.aclose()
            try:
                target = response.url.join(location)
            except httpx.InvalidURL:
                raise UpstreamInvalid(f"{where(url)}: redirect to a malformed URL") from None
            if target.scheme not in ("http", "https") or not target.host:
                raise UpstreamInvalid(f"{where(url)}: redirect to a {target.scheme} URL")
            if url.scheme == "https" and target.scheme != "https":
                raise UpstreamInvalid(f"{where(url)}: redirect from HTTPS to plain HTTP")
            url = target
        raise UpstreamInvalid(f"{where(url)}: more than {MAX_REDIRECTS} redirects")

    async def _failure(self, response: httpx.Response) -> UpstreamError:
        error = await failure(response)
        if isinstance(error, UpstreamUnauthorized) and not _same_origin(response.url, self._base):
            # Object storage refusing a redirect's URL (expired, say) says nothing of the
            # credentials: the next request gets a new URL.
            return UpstreamUnavailable(error.message, error.status)
        return error


# --- what is sent ------------------------------------------------------------------------


def _registry_url(base_url: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise ValueError(f"invalid upstream URL {base_url[:200]!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"an upstream URL is http:// or https:// and a host: {base_url[:200]!r}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"an upstream URL is a scheme, host and port only: {base_url[:200]!r}")
    return url.copy_with(path="/")


def _repository(name: str) -> str:
    try:
        return check_repository_name(name)
    except NameInvalid as error:
        raise ValueError(error.message) from None


def _digest(text: str) -> str:
    try:
        return str(Digest.parse(text))
    except DigestInvalid as error:
        raise ValueError(error.message) from None


def _manifest_path(repository: str, reference: str) -> str:
    if ":" in reference:
        reference = _digest(reference)
    else:
        try:
            check_tag(reference)
        except TagInvalid as error:
            raise ValueError(error.message) from None
    return f"/v2/{_repository(repository)}/manifests/{reference}"


def _pull_scope(repository: str) -> str:
    return f"repository:{_repository(repository)}:pull"


def _accept(accept: Sequence[str]) -> dict[str, str]:
    return {"Accept": ", ".join(accept)} if accept else {}


def _same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    return (url.scheme, url.host, url.port) == (other.scheme, other.host, other.port)


# --- what is answered --------------------------------------------------------------------


def _content_type(response: httpx.Response) -> str:
    header: str = response.headers.get("content-type", "")
    return header.split(";")[0].strip()


def _announced_digest(response: httpx.Response) -> str | None:
    """The Docker-Content-Digest header; UpstreamInvalid when it is not a digest."""
    announced = response.headers.get("docker-content-digest")
    if not announced:
        return None
    try:
        return str(Digest.parse(announced.strip()))
    except DigestInvalid:
        raise UpstreamInvalid(
            f"{where(response.url)}: Docker-Content-Digest {announced[:200]!r} is no digest"
        ) from None


def _manifest_of(response: httpx.Response, body: bytes, reference: str) -> UpstreamManifest:
    """The manifest a GET answered, its bytes checked against the digests it should have."""
    at = where(response.url)
    for expected in (reference if ":" in reference else None, _announced_digest(response)):
        if expected is None:
            continue
        wanted = Digest.parse(expected)
        actual = Digest.of(body, wanted.algorithm)
        if actual != wanted:
            raise UpstreamInvalid(f"{at}: the manifest should be {wanted} but hashes to {actual}")
    try:
        document = parse_json(body)
    except InputInvalid as error:
        raise UpstreamInvalid(f"{at}: the manifest is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UpstreamInvalid(f"{at}: the manifest is not a JSON object")
    media_type = _content_type(response)
    if media_type in _GENERIC_TYPES:
        declared = document.get("mediaType")
        if not isinstance(declared, str) or not declared:
            raise UpstreamInvalid(f"{at}: the manifest names no media type")
        media_type = declared
    return UpstreamManifest(body, media_type, str(Digest.of(body)))


def _descriptors(body: bytes, at: str) -> list[dict[str, Any]]:
    """The `manifests` of a referrers index: descriptors with a digest."""
    try:
        document = parse_json(body)
    except InputInvalid as error:
        raise UpstreamInvalid(f"{at}: the referrers index is not JSON: {error}") from None
    listed = document.get("manifests", []) if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise UpstreamInvalid(f"{at}: the referrers index lists no manifests")
    return [
        entry
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
    ]
