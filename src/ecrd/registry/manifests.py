"""Manifests and tags: put, get, delete, list, referrers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ecrd.auth.principals import Principal
from ecrd.digests import Digest, is_digest
from ecrd.errors import (
    DigestInvalid,
    DigestMismatch,
    ManifestArchived,
    ManifestNotFound,
    ManifestTooLarge,
    TagInvalid,
)
from ecrd.jobs.background import BackgroundTasks
from ecrd.metadata.manifests import AuthorizedPull, ManifestStore
from ecrd.metadata.records import (
    Manifest,
    NewManifest,
    Registry,
    Repository,
    StoredManifest,
    utcnow,
)
from ecrd.metadata.storage_classes import ACTIVATING, ACTIVE, status_of
from ecrd.names import check_repository_name, check_tag
from ecrd.registry.manifest_format import parse_manifest
from ecrd.registry.pull_time_exclusions import PullTimeExclusionService
from ecrd.registry.repositories import repository_not_found

# ECR refreshes lastRecordedPullTime at most this often; pulls in between cost no write.
PULL_RECORD_INTERVAL_SECONDS = 60.0
MAX_REMEMBERED_PULLS = 100_000


@dataclass(frozen=True)
class Reference:
    """A manifest reference from a URL: exactly one of tag and digest is set."""

    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if is_digest(text):
            return cls(tag=None, digest=str(Digest.parse(text)))
        return cls(tag=check_tag(text), digest=None)


@dataclass(frozen=True)
class ManifestPush:
    """A manifest checked and ready to store, and the tags to point at it."""

    manifest: NewManifest
    tags: tuple[str, ...]


class ManifestService:
    def __init__(
        self,
        manifests: ManifestStore,
        max_manifest_bytes: int,
        background: BackgroundTasks,
        pull_time_exclusions: PullTimeExclusionService | None = None,
    ) -> None:
        self._manifests = manifests
        self.max_manifest_bytes = max_manifest_bytes
        # Pull-time writes go here, so that a shutdown waits for them (the job runner drains it).
        self._background = background
        # Principals whose pulls are not recorded (none when not given).
        self._exclusions = pull_time_exclusions
        # Keyed by (id, pushed-at): SQLite reuses the id of a deleted row, even for the same
        # digest, but a manifest stored again has a new push time.
        self._pulls_recorded: dict[tuple[int, datetime], float] = {}
        # Pulls to write, in one statement for all that arrive while one is being written.
        self._pending_pulls: set[int] = set()
        self._writing_pulls = False
        # Called when a push queued replication, so the job runs soon (set by the app).
        self.on_replication_queued: Callable[[], None] | None = None
        self.on_signing_queued: Callable[[], None] | None = None
        # Awaited after every store (scan on push; set when services are built).
        self.on_stored: Callable[[Repository, StoredManifest], Awaitable[None]] | None = None

    def prepare_put(
        self,
        reference: str,
        content_type: str | None,
        payload: bytes,
        extra_tags: Sequence[str] = (),
    ) -> ManifestPush:
        """Check a manifest pushed under a reference from a URL (a tag, or the manifest's
        digest) and tagged with `extra_tags` too, before anything is stored."""
        parsed = Reference.parse(reference)
        tags = [check_tag(tag) for tag in extra_tags]
        if parsed.tag is not None:
            tags.insert(0, parsed.tag)
        return self.prepare(payload, content_type, tags, parsed.digest)

    def prepare(
        self,
        payload: bytes,
        content_type: str | None,
        tags: str | Sequence[str] | None,
        expected_digest: str | None,
        infer_media_type: bool = True,
    ) -> ManifestPush:
        """Parse and check a manifest to store with `tags` (one, several or none); refuse it
        (ManifestInvalid, ManifestTooLarge, DigestMismatch unless its digest is
        `expected_digest`, in that digest's algorithm) before anything is written.
        `infer_media_type`: see `parse_manifest`."""
        if len(payload) > self.max_manifest_bytes:
            raise ManifestTooLarge(f"manifest exceeds {self.max_manifest_bytes} bytes")
        algorithm = "sha256"
        if expected_digest is not None:
            expected_digest = str(Digest.parse(expected_digest))
            algorithm = Digest.parse(expected_digest).algorithm
        new = parse_manifest(payload, content_type, algorithm, infer_media_type)
        if expected_digest is not None and expected_digest != new.digest:
            raise DigestMismatch(f"manifest digest is {new.digest}, not {expected_digest}")
        tag_names = [tags] if isinstance(tags, str) else list(tags or ())
        return ManifestPush(new, tuple(tag_names))

    async def store(
        self,
        repository: Repository,
        payload: bytes,
        content_type: str | None,
        tags: str | Sequence[str] | None,
        expected_digest: str | None,
        require_references: bool = True,
        infer_media_type: bool = True,
        pusher: Principal | None = None,
    ) -> StoredManifest:
        """Check and store a manifest (see `prepare`) in one step."""
        push = self.prepare(payload, content_type, tags, expected_digest, infer_media_type)
        return await self.store_prepared(repository, push, require_references, pusher)

    async def store_prepared(
        self,
        repository: Repository,
        push: ManifestPush,
        require_references: bool = True,
        pusher: Principal | None = None,
    ) -> StoredManifest:
        """Store a checked manifest with its tags pointing at it, pushed by `pusher` (None:
        ecrd stores it itself).

        `require_references` off lets a manifest name layers and children that are not there
        (for test suites written against mocks; ECR itself never allows it).
        """
        stored = await self._manifests.put(
            repository.id,
            push.manifest,
            push.tags,
            immutable_tags={tag for tag in push.tags if repository.tag_is_immutable(tag)},
            require_references=require_references,
            pusher=pusher,
        )
        if stored.replication_queued and self.on_replication_queued is not None:
            self.on_replication_queued()
        if stored.signing_queued and self.on_signing_queued is not None:
            self.on_signing_queued()
        if self.on_stored is not None:
            await self.on_stored(repository, stored)
        return stored

    async def store_replica(self, repository: Repository, push: ManifestPush) -> StoredManifest:
        """Store a replicated manifest, not to be replicated again (ECR replicates a push
        once). What it references was linked from the source; what the source lacks, the
        replica lacks (so references are not required)."""
        return await self._manifests.put(
            repository.id,
            push.manifest,
            push.tags,
            immutable_tags={tag for tag in push.tags if repository.tag_is_immutable(tag)},
            require_references=False,
            replicate=False,
        )

    async def untag_replica(self, repository: Repository, tag: str) -> bool:
        """Remove a tag from a replica (the source removed it); not replicated again."""
        return await self._manifests.delete_tag(repository.id, tag, replicate=False)

    async def authorized_pull(
        self, registry: Registry, name: str, reference: str
    ) -> AuthorizedPull | None:
        """The registry policy and scope a pull is checked against and what it finds, in one
        metadata read (None for a reference that is no tag or digest: find_for_pull says
        so); find_for_pull takes the answer instead of reading again."""
        try:
            parsed = Reference.parse(reference)
        except (TagInvalid, DigestInvalid):
            return None
        return await self._manifests.find_for_authorized_pull(
            registry.id, name, parsed.tag, parsed.digest
        )

    async def find_for_pull(
        self, registry: Registry, name: str, reference: str, known: AuthorizedPull | None = None
    ) -> tuple[Repository, Manifest]:
        """The repository and manifest a pull names, in one metadata read (none when `known`
        is what authorized_pull just read). A reference that is neither a valid tag nor a
        valid digest names no manifest (ManifestNotFound); an archived manifest, or one still
        being restored, cannot be pulled (ManifestArchived)."""
        check_repository_name(name)
        try:
            parsed = Reference.parse(reference)
        except (TagInvalid, DigestInvalid):
            raise ManifestNotFound(f"manifest {reference[:200]!r} is unknown") from None
        if known is not None:
            found = known.found
        else:
            found = await self._manifests.find_for_pull(
                registry.id, name, parsed.tag, parsed.digest
            )
        if found is None:
            raise repository_not_found(registry, name)
        repository, manifest = found
        if manifest is None:
            raise ManifestNotFound(f"manifest {reference} is not in repository {name}")
        status = status_of(manifest.image_status, manifest.last_activated_at, utcnow())
        if status != ACTIVE:
            state = "being restored" if status == ACTIVATING else "archived"
            raise ManifestArchived(f"manifest {reference} in repository {name} is {state}")
        return repository, manifest

    async def find_in(
        self, repository: Repository, tag: str | None, digest: str | None
    ) -> Manifest | None:
        """The manifest a tag, a digest, or both name in the repository; None if none does."""
        return await self._manifests.find(repository.id, tag, digest)

    async def find_many_in(
        self, repository: Repository, tag_names: list[str], digests: list[str]
    ) -> tuple[dict[str, Manifest], dict[str, Manifest]]:
        return await self._manifests.find_many(repository.id, tag_names, digests)

    async def find_by_id(self, repository_id: int, digest: str) -> Manifest | None:
        """The manifest with `digest` in the repository (by id, for background work)."""
        return await self._manifests.find(repository_id, None, digest)

    async def delete(self, repository: Repository, reference: str) -> None:
        """Delete a tag, or a manifest with all its tags when given a digest."""
        parsed = Reference.parse(reference)
        if parsed.tag is not None:
            deleted = await self._manifests.delete_tag(repository.id, parsed.tag)
        else:
            deleted = await self._manifests.delete(repository.id, str(parsed.digest))
        if not deleted:
            raise ManifestNotFound(f"manifest {reference} is not in repository {repository.name}")

    async def tags(self, repository: Repository, after: str | None, limit: int) -> list[str]:
        return await self._manifests.list_tags(repository.id, after, limit)

    async def referrers(
        self,
        repository: Repository,
        subject_digest: str,
        artifact_types: list[str] | None = None,
        after_digest: str | None = None,
        limit: int | None = None,
        image_status: str = ACTIVE,
    ) -> list[Manifest]:
        """Manifests whose subject is `subject_digest`, in digest order, optionally only
        those of `artifact_types` and a page of them; by default only those that can be
        pulled (ACTIVE), else those of `image_status` (ANY: all)."""
        canonical = str(Digest.parse(subject_digest))
        return await self._manifests.referrers(
            repository.id, canonical, artifact_types, after_digest, limit, image_status
        )

    def record_pull(
        self, repository: Repository, manifest: Manifest, principal: Principal | None = None
    ) -> None:
        """Note that `principal` pulled the manifest: a background write, at most once a
        minute each, and none for a principal the registry excludes from pull times.

        The exclusion is checked before the once-a-minute bound, so an excluded pull never
        stands in for the next one. With the registry's list in memory (the usual case) this
        costs no task unless it writes; otherwise the list is read in the background first.
        """
        if principal is not None and self._exclusions is not None:
            excluded = self._exclusions.cached(repository.registry_id, principal)
            if excluded is None:
                self._background.spawn(
                    self._record_unless_excluded(repository, manifest, principal)
                )
                return
            if excluded:
                return
        if self._is_due(manifest):
            self._queue_pull(manifest.id)

    async def _record_unless_excluded(
        self, repository: Repository, manifest: Manifest, principal: Principal
    ) -> None:
        assert self._exclusions is not None
        if await self._exclusions.is_excluded(repository.registry_id, principal):
            return
        if self._is_due(manifest):
            self._queue_pull(manifest.id)

    def _queue_pull(self, manifest_id: int) -> None:
        """Write the pull soon, with the others pending: a BatchGetImage of 100 images, or many
        clients pulling at once, costs one write rather than one each."""
        self._pending_pulls.add(manifest_id)
        if not self._writing_pulls:
            self._writing_pulls = True
            self._background.spawn(self._write_pulls())

    async def _write_pulls(self) -> None:
        try:
            while self._pending_pulls:
                manifest_ids, self._pending_pulls = self._pending_pulls, set()
                await self._manifests.record_pulls(manifest_ids, utcnow())
        finally:
            self._writing_pulls = False

    def _is_due(self, manifest: Manifest) -> bool:
        """Whether this pull is to be written (and, if so, noted as written now)."""
        now = time.monotonic()
        key = (manifest.id, manifest.pushed_at)
        last = self._pulls_recorded.get(key)
        if last is not None and now - last < PULL_RECORD_INTERVAL_SECONDS:
            return False
        if len(self._pulls_recorded) >= MAX_REMEMBERED_PULLS:
            self._pulls_recorded.clear()
        self._pulls_recorded[key] = now
        return True
