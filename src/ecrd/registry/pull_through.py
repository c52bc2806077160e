"""The pull-through cache: what a pull of a cached repository fetches from its upstream.

A pull of `<prefix>/<name>:<tag or digest>` that a rule covers is answered from what is
stored when it can be: a digest always, a tag until its refresh interval has passed since it
was last checked. Otherwise the manifest is fetched from the upstream (an index with the
manifests it lists, and the referrers of what was fetched), stored in the repository (made
through its PULL_THROUGH_CACHE creation template on the first pull) and served. Blobs are
fetched when a client asks for one the repository lacks, and stream to that client while
they are stored. While the upstream is out of reach or refuses, what is stored is served.

Within a process, concurrent pulls of the same manifest or blob fetch it once: the others
wait for that fetch and read what it stored. Processes do not coordinate (each may fetch a
blob once; storing the same content twice is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from ecrd.digests import Digest
from ecrd.errors import (
    BlobNotFound,
    DigestInvalid,
    ManifestArchived,
    ManifestNotFound,
    RegistryError,
    RepositoryNotFound,
    TagImmutable,
    TagInvalid,
    UpstreamDenied,
    UpstreamUnavailable,
)
from ecrd.metadata.manifests import AuthorizedPull
from ecrd.metadata.pull_through_rules import PullThroughRule, PullThroughTagStore
from ecrd.metadata.records import Blob, Manifest, Registry, Repository, utcnow
from ecrd.registry import media_types
from ecrd.registry.blobs import BlobService
from ecrd.registry.manifests import ManifestService, Reference
from ecrd.registry.pull_through_rules import (
    CachedName,
    PullThroughRuleService,
    SecretReader,
    upstream_host,
)
from ecrd.registry.repositories import RepositoryService
from ecrd.registry.uploads import UploadService
from ecrd.upstream.client import BasicCredentials, UpstreamClient, UpstreamManifest
from ecrd.upstream.ecr_login import EcrLogin
from ecrd.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnauthorized,
)
from ecrd.upstream.errors import (
    UpstreamUnavailable as UpstreamDown,
)

# What ecrd asks an upstream for: every manifest kind it stores.
ACCEPTED_MANIFESTS = tuple(sorted(media_types.ALL_MANIFESTS))
# The most manifests an index may list, and referrers, that one fetch brings along.
MAX_CHILDREN = 256
MAX_REFERRERS = 64
# Manifests fetched at once for one index.
CHILD_FETCHES = 4
# Chunks a streaming blob holds for its client before the upstream read waits.
STREAM_QUEUE_CHUNKS = 16
logger = logging.getLogger("ecrd.pull_through")

T = TypeVar("T")


@dataclass(frozen=True)
class StreamedBlob:
    """A blob being fetched: its size when the upstream said, and its bytes as they come."""

    digest: str
    size: int | None
    chunks: AsyncIterator[bytes]


class _Listener:
    """The client a blob fetch streams to, until it goes away."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(STREAM_QUEUE_CHUNKS)
        self.gone = False

    async def send(self, item: bytes | BaseException | None) -> None:
        if not self.gone:
            await self.queue.put(item)

    def leave(self) -> None:
        self.gone = True
        while not self.queue.empty():  # frees a fetch waiting to put its next chunk
            self.queue.get_nowait()


class PullThroughCache:
    def __init__(
        self,
        rules: PullThroughRuleService,
        repositories: RepositoryService,
        manifests: ManifestService,
        blobs: BlobService,
        uploads: UploadService,
        tags: PullThroughTagStore,
        secrets: SecretReader,
        endpoints: dict[str, str],
        refresh_seconds: int,
    ) -> None:
        self._rules = rules
        self._repositories = repositories
        self._manifests = manifests
        self._blobs = blobs
        self._uploads = uploads
        self._tags = tags
        self._secrets = secrets
        self._endpoints = {host.lower(): url.rstrip("/") for host, url in endpoints.items()}
        self._refresh = timedelta(seconds=refresh_seconds)
        # (registry id, rule prefix, rule updated at) -> its client
        self._clients: dict[tuple[int, str, Any], UpstreamClient] = {}
        self._fetches: dict[tuple[Any, ...], asyncio.Task[Any]] = {}

    # --- manifests -----------------------------------------------------------------------

    async def find_for_pull(
        self, registry: Registry, name: str, reference: str, known: AuthorizedPull | None = None
    ) -> tuple[Repository, Manifest]:
        """What ManifestService.find_for_pull answers (from `known` when given), fetched from
        the upstream first where a rule covers `name` and nothing (or a tag due for its
        check) is stored."""
        cached = await self._rules.covering(registry, name)
        if cached is None:
            return await self._manifests.find_for_pull(registry, name, reference, known)
        try:
            parsed = Reference.parse(reference)
        except (TagInvalid, DigestInvalid):
            raise ManifestNotFound(f"manifest {reference[:200]!r} is unknown") from None
        local: tuple[Repository, Manifest] | None = None
        try:
            local = await self._manifests.find_for_pull(registry, name, reference, known)
        except ManifestArchived:
            raise
        except (RepositoryNotFound, ManifestNotFound):
            pass
        if local is not None and (parsed.tag is None or not await self._due(local[0], parsed.tag)):
            return local
        key = ("manifest", registry.id, name, reference)
        return await self._once(
            key, lambda: self._fetch_manifest(registry, name, cached, parsed, local)
        )

    async def _due(self, repository: Repository, tag: str) -> bool:
        checked = await self._tags.checked_at(repository.id, tag)
        return checked is None or utcnow() - checked >= self._refresh

    async def _fetch_manifest(
        self,
        registry: Registry,
        name: str,
        cached: CachedName,
        reference: Reference,
        local: tuple[Repository, Manifest] | None,
    ) -> tuple[Repository, Manifest]:
        client = self._client(registry, cached.rule)
        upstream_name = cached.upstream_name
        wanted = reference.tag or str(reference.digest)
        try:
            if local is not None and reference.tag is not None:
                # A cheap HEAD first: an unchanged tag costs no download (nor, on Docker Hub,
                # any of the rate limit).
                found = await client.manifest_digest(upstream_name, wanted, ACCEPTED_MANIFESTS)
                if found.digest == local[1].digest:
                    await self._tags.mark_checked(local[0].id, reference.tag, utcnow())
                    return local
            fetched = await client.manifest(upstream_name, wanted, ACCEPTED_MANIFESTS)
        except UpstreamError as error:
            if local is None:
                raise _pull_error(error, cached, wanted) from None
            logger.warning(
                "serving cached %s:%s; its upstream %s/%s: %s",
                name, wanted, cached.rule.upstream_url, upstream_name, error,
            )  # fmt: skip
            if reference.tag is not None:  # checked again a refresh interval from now
                await self._tags.mark_checked(local[0].id, reference.tag, utcnow())
            return local
        repository = await self._repositories.for_cache(registry, name)
        if fetched.media_type in media_types.INDEXES:
            await self._store_children(client, upstream_name, repository, fetched)
        try:
            stored = await self._store(repository, fetched, reference.tag)
        except TagImmutable:
            if local is None:
                raise
            logger.warning("cached tag %s:%s is immutable; the upstream moved it", name, wanted)
            return local
        if reference.tag is not None:
            await self._tags.mark_checked(repository.id, reference.tag, utcnow())
        await self._store_referrers(client, upstream_name, repository, fetched.digest)
        return repository, stored

    async def _store(
        self, repository: Repository, fetched: UpstreamManifest, tag: str | None
    ) -> Manifest:
        push = self._manifests.prepare(fetched.body, fetched.media_type, tag, fetched.digest)
        # Blobs come when a client asks for them (and are stored then), as in CNCF
        # Distribution's proxy: a pull of one platform of an index fetches only its layers.
        stored = await self._manifests.store_prepared(repository, push, require_references=False)
        return stored.manifest

    async def _store_children(
        self,
        client: UpstreamClient,
        upstream_name: str,
        repository: Repository,
        index: UpstreamManifest,
    ) -> None:
        """Fetch and store the manifests an index lists that the repository lacks."""
        try:
            listed = json.loads(index.body).get("manifests") or []
        except (ValueError, AttributeError):
            return  # storing the index answers its flaws
        digests = [entry.get("digest") for entry in listed if isinstance(entry, dict)]
        limiter = asyncio.Semaphore(CHILD_FETCHES)

        async def fetch(digest: str) -> None:
            async with limiter:
                if await self._manifests.find_in(repository, None, digest) is not None:
                    return
                child = await client.manifest(upstream_name, digest, ACCEPTED_MANIFESTS)
                await self._store(repository, child, None)

        wanted = [d for d in dict.fromkeys(digests) if isinstance(d, str)][:MAX_CHILDREN]
        try:
            await asyncio.gather(*(fetch(digest) for digest in wanted))
        except UpstreamError as error:
            raise _pull_error(error, None, index.digest) from None

    async def _store_referrers(
        self, client: UpstreamClient, upstream_name: str, repository: Repository, digest: str
    ) -> None:
        """Bring along what refers to the image upstream (signatures, SBOMs): best effort,
        so an upstream without the referrers API still serves the image."""
        try:
            descriptors = await client.referrers(upstream_name, digest)
            for descriptor in descriptors[:MAX_REFERRERS]:
                referrer = descriptor.get("digest")
                if not isinstance(referrer, str):
                    continue
                if await self._manifests.find_in(repository, None, referrer) is not None:
                    continue
                fetched = await client.manifest(upstream_name, referrer, ACCEPTED_MANIFESTS)
                await self._store(repository, fetched, None)
        except (UpstreamError, RegistryError) as error:
            logger.info("referrers of %s in %s not cached: %s", digest, repository.name, error)

    # --- blobs ---------------------------------------------------------------------------

    async def fetch_blob(
        self, registry: Registry, repository: Repository, digest: str, stream: bool
    ) -> Blob | StreamedBlob:
        """A blob the repository lacks, from its upstream: stored, or (`stream`) streaming to
        the caller while it is stored. BlobNotFound where no rule covers the repository."""
        canonical = str(Digest.parse(digest))
        cached = await self._rules.covering(registry, repository.name)
        if cached is None:
            raise BlobNotFound(f"blob {canonical} is not in repository {repository.name}")
        key = ("blob", repository.id, canonical)
        running = self._fetches.get(key)
        if running is not None or not stream:
            await self._once(
                key, lambda: self._store_blob(cached, registry, repository, canonical, None)
            )
            return await self._blobs.get(repository, canonical)
        listener = _Listener()
        started: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(
            self._store_blob(cached, registry, repository, canonical, (listener, started))
        )
        self._fetches[key] = task
        task.add_done_callback(lambda _: self._fetches.pop(key, None))
        task.add_done_callback(_retrieved)
        try:
            size = await asyncio.shield(started)
        except BaseException:
            listener.leave()
            raise
        return StreamedBlob(canonical, size, _relay(listener))

    async def _store_blob(
        self,
        cached: CachedName,
        registry: Registry,
        repository: Repository,
        digest: str,
        streaming: tuple[_Listener, asyncio.Future[int | None]] | None,
    ) -> Blob:
        listener, started = streaming or (None, None)
        client = self._client(registry, cached.rule)
        upload = None
        try:
            async with client.blob(cached.upstream_name, digest) as upstream:
                upload = await self._uploads.start(repository)
                if started is not None and not started.done():
                    started.set_result(upstream.size)

                async def tee() -> AsyncIterator[bytes]:
                    async for chunk in upstream.chunks():
                        if listener is not None:
                            await listener.send(chunk)
                        yield chunk

                written = await self._uploads.append(repository, upload.id, tee())
            blob = await self._uploads.finish(repository, upload.id, digest, written)
            upload = None
        except BaseException as error:
            failure: BaseException = error
            if isinstance(error, UpstreamError):
                failure = _pull_error(error, cached, digest, blob=True)
            if started is not None and not started.done():
                started.set_exception(failure)
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.send(failure)
            if upload is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._uploads.cancel(repository, upload.id))
            if failure is not error:
                raise failure from None
            raise
        if listener is not None:
            await listener.send(None)
        return blob

    # --- the upstream --------------------------------------------------------------------

    async def validate(self, registry: Registry, rule: PullThroughRule) -> str | None:
        """Why the rule cannot reach its upstream (its secret, its credentials), or None."""
        if rule.credential_arn is not None:
            try:
                await self._credentials_of(registry, rule.credential_arn)
            except UpstreamDenied as error:
                return error.message
        try:
            await self._client(registry, rule).check()
        except UpstreamError as error:
            return _pull_error(error, None, None).message
        except UpstreamDenied as error:
            return error.message
        return None

    def _client(self, registry: Registry, rule: PullThroughRule) -> UpstreamClient:
        key = (registry.id, rule.prefix, rule.updated_at)
        client = self._clients.get(key)
        if client is None:
            for old in [k for k in self._clients if k[:2] == key[:2]]:
                stale = self._clients.pop(old)
                asyncio.ensure_future(stale.aclose())
            host = upstream_host(rule.upstream_url)
            base_url = self._endpoints.get(host, f"https://{host}")
            credentials: Callable[[], Awaitable[BasicCredentials | None]] | None = None
            if rule.credential_arn is not None:
                arn = rule.credential_arn

                async def from_secret() -> BasicCredentials | None:
                    return await self._credentials_of(registry, arn)

                credentials = from_secret
            elif rule.upstream_registry == "ecr":
                credentials = EcrLogin(base_url, host)
            client = UpstreamClient(base_url, credentials)
            self._clients[key] = client
        return client

    async def _credentials_of(self, registry: Registry, arn: str) -> BasicCredentials:
        """The secret's `{"username", "accessToken"}`, as ECR reads it."""
        try:
            text = await self._secrets.current_value(registry.account_id, registry.region, arn)
        except RegistryError as error:
            raise UpstreamDenied(f"the credential secret of the rule: {error.message}") from None
        try:
            value = json.loads(text)
            username, token = value["username"], value["accessToken"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamDenied(
                f"the secret {arn} does not hold JSON with `username` and `accessToken`"
            ) from None
        if not isinstance(username, str) or not isinstance(token, str):
            raise UpstreamDenied(f"the secret {arn}'s `username` and `accessToken` are not text")
        return BasicCredentials(username, token)

    async def _once(self, key: tuple[Any, ...], work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` unless the same is running; then wait for that one's result."""
        running = self._fetches.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._fetches[key] = running
            running.add_done_callback(lambda _: self._fetches.pop(key, None))
            running.add_done_callback(_retrieved)
        result: T = await asyncio.shield(running)
        return result

    async def close(self) -> None:
        for task in list(self._fetches.values()):
            task.cancel()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()


async def _relay(listener: _Listener) -> AsyncIterator[bytes]:
    """The client's side of a streaming fetch: chunks until the end, or the fetch's error."""
    try:
        while True:
            item = await listener.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        listener.leave()


def _pull_error(
    error: UpstreamError, cached: CachedName | None, what: str | None, blob: bool = False
) -> RegistryError:
    """The pull's answer for an upstream that could not give what it asked for."""
    where = "the upstream registry"
    if cached is not None:
        where = f"upstream {cached.rule.upstream_url}/{cached.upstream_name}"
    if isinstance(error, UpstreamNotFound):
        if blob:
            return BlobNotFound(f"blob {what} is not in {where}")
        return ManifestNotFound(f"manifest {what} is not in {where}")
    if isinstance(error, UpstreamUnauthorized):
        return UpstreamDenied(f"{where} refused the pull through cache rule's credentials")
    if isinstance(error, UpstreamDown):
        return UpstreamUnavailable(f"{where} is out of reach: {error}")
    return UpstreamUnavailable(f"{where} answered against the distribution spec: {error}")


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a fetch's failure as seen: its waiters (if any) got it already."""
    if not task.cancelled():
        task.exception()
