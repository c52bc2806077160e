"""Online garbage collection: bytes no repository can reach go back to the disk or the bucket,
while the registry serves pushes and pulls.

A collection runs in stages, each over pages of candidates read from the metadata store, and
each candidate decided again where it is deleted (see metadata/garbage.py for the locking):

1. untagged images no manifest list names, only with `delete_untagged` (ECR keeps them: its
   way to expire them is a lifecycle policy), through the same delete as BatchDeleteImage;
2. links of repositories to blobs no manifest of theirs references, once the grace window has
   run out since the link was made or its last manifest deleted;
3. blobs nothing links or references: claimed, their bytes deleted, then their rows;
4. bytes at blob paths with no row (a crash between a commit and its record), older than the
   window, claimed through a row of their own the same way;
5. upload bytes no upload row names, and commits a killed process left half assembled.

A dry run reads what stages 1-4 would remove and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial

from ecrd.blobs.store import BlobStore
from ecrd.errors import ImageTagsChanged, ManifestReferenced
from ecrd.metadata.blobs import STALE_CLAIM
from ecrd.metadata.garbage import ClaimedBlob, GarbageStore, Reclaimable
from ecrd.metadata.images import ImageStore
from ecrd.metadata.records import utcnow
from ecrd.registry.uploads import UploadService

PAGE_SIZE = 500
# Longer than any commit takes to assemble a blob (S3 copies 5 GiB in minutes): an assembly
# started before this is one a killed process left.
ASSEMBLY_TIME = timedelta(hours=1)
# Bounds the pages of one stage (PAGE_SIZE * MAX_PAGES candidates); the next run goes on.
MAX_PAGES = 20_000
logger = logging.getLogger("ecrd.gc")

# (stage, items done in it so far): for a progress display.
Progress = Callable[[str, int], None]


@dataclass
class CollectionReport:
    """What one collection found and removed (for a dry run: would remove)."""

    dry_run: bool = False
    untagged_images: int = 0
    links: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    orphaned_blobs: int = 0
    orphaned_bytes: int = 0
    orphaned_uploads: int = 0
    abandoned_commits: int = 0
    # Blobs the store could not delete (kept, and tried again next time).
    failed: int = 0

    def counts(self) -> dict[str, int]:
        return {name: int(value) for name, value in asdict(self).items() if name != "dry_run"}

    @property
    def bytes_reclaimed(self) -> int:
        return self.blob_bytes + self.orphaned_bytes


class GarbageCollector:
    def __init__(
        self,
        store: GarbageStore,
        images: ImageStore,
        blob_store: BlobStore,
        uploads: UploadService,
        upload_expiry_seconds: int,
    ) -> None:
        self._store = store
        self._images = images
        self._blob_store = blob_store
        self._uploads = uploads
        self._upload_expiry_seconds = upload_expiry_seconds

    async def estimate(self, grace_seconds: int) -> Reclaimable:
        """The links and blobs (with bytes) a collection would remove now."""
        now = utcnow()
        return await self._store.reclaimable(
            now - timedelta(seconds=grace_seconds), now - STALE_CLAIM
        )

    async def collect(
        self,
        grace_seconds: int,
        dry_run: bool = False,
        delete_untagged: bool = False,
        progress: Progress | None = None,
    ) -> CollectionReport:
        now = utcnow()
        cutoff = now - timedelta(seconds=grace_seconds)
        stale_claims = now - STALE_CLAIM
        report = CollectionReport(dry_run=dry_run)
        tick = progress or (lambda _stage, _done: None)
        if dry_run:
            if delete_untagged:
                report.untagged_images = await self._untagged(cutoff, tick, dry_run=True)
            found = await self._store.reclaimable(cutoff, stale_claims)
            report.links, report.blobs, report.blob_bytes = found.links, found.blobs, found.bytes
            report.orphaned_blobs, report.orphaned_bytes = await self._orphans(cutoff, None, tick)
            return report
        if delete_untagged:
            report.untagged_images = await self._untagged(cutoff, tick, dry_run=False)
            # The window of the links those images released starts now: with none (a test, or
            # an operator's `--grace 0`), their blobs go in this same run.
            cutoff = utcnow() - timedelta(seconds=grace_seconds)
        report.links = await self._remove_links(cutoff, tick)
        await self._remove_blobs(cutoff, stale_claims, report, tick)
        report.orphaned_blobs, report.orphaned_bytes = await self._orphans(cutoff, report, tick)
        report.orphaned_uploads = await self._uploads.collect_orphans(self._upload_expiry_seconds)
        # However small the grace window, never an assembly that may still be running.
        assembling = utcnow() - ASSEMBLY_TIME
        report.abandoned_commits = await self._blob_store.abandoned_commits(min(cutoff, assembling))
        return report

    async def _untagged(self, cutoff: datetime, tick: Progress, dry_run: bool) -> int:
        """Delete (or, for a dry run, count) the untagged images no index lists."""
        done, after = 0, None
        for _page in range(MAX_PAGES):
            page = await self._store.untagged_images(cutoff, after, PAGE_SIZE)
            for _manifest_id, repository_id, digest in page:
                if dry_run:
                    done += 1
                    continue
                try:
                    # Only while still untagged: a push may have tagged it since it was read.
                    deletion = await self._images.delete_by_digest(
                        repository_id, digest, if_tagged_as=()
                    )
                except (ManifestReferenced, ImageTagsChanged):
                    continue  # an index listing it, or a tag, came meanwhile
                done += deletion is not None
            tick("untagged images", done)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1][0]
        return done

    async def _remove_links(self, cutoff: datetime, tick: Progress) -> int:
        removed, after = 0, None
        for _page in range(MAX_PAGES):
            page = await self._store.unused_links(cutoff, after, PAGE_SIZE)
            if page:
                removed += await self._store.remove_links(page, cutoff)
                tick("links", removed)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1]
        return removed

    async def _remove_blobs(
        self, cutoff: datetime, stale_claims: datetime, report: CollectionReport, tick: Progress
    ) -> None:
        after = None
        for _page in range(MAX_PAGES):
            page = await self._store.unused_blobs(cutoff, stale_claims, after, PAGE_SIZE)
            if page:
                removed = await asyncio.shield(
                    self._claim_and_delete(
                        partial(self._store.claim, page, cutoff, stale_claims), report
                    )
                )
                report.blobs += len(removed)
                report.blob_bytes += sum(blob.size for blob in removed)
                tick("blobs", report.blobs)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1]

    async def _orphans(
        self, cutoff: datetime, report: CollectionReport | None, tick: Progress
    ) -> tuple[int, int]:
        """Bytes in the store with no blob row, written before `cutoff`: removed (or, with no
        report to fill, a dry run, only counted). Return (blobs, bytes)."""
        count = size = 0
        after = None
        for _page in range(MAX_PAGES):
            stored = await self._blob_store.stored_blobs(after, PAGE_SIZE)
            if not stored:
                break
            after = stored[-1].digest
            old = [blob for blob in stored if blob.written_at < cutoff]
            recorded = await self._store.recorded([blob.digest for blob in old]) if old else set()
            orphans = [blob for blob in old if blob.digest not in recorded]
            if orphans and report is not None:
                removed = await asyncio.shield(
                    self._claim_and_delete(partial(self._store.claim_orphans, orphans), report)
                )
                count += len(removed)
                size += sum(blob.size for blob in removed)
                tick("orphaned blobs", count)
            elif orphans:
                count += len(orphans)
                size += sum(blob.size for blob in orphans)
            if len(stored) < PAGE_SIZE:
                break
        return count, size

    async def _claim_and_delete(
        self,
        claim: Callable[[datetime], Awaitable[list[ClaimedBlob]]],
        report: CollectionReport,
    ) -> list[ClaimedBlob]:
        """Claim blobs, delete their bytes, then their rows; return those that went. Run
        shielded: a collection cut off (its lease, a stopping server) between a claim and its
        release would otherwise leave claims that keep uploads of those blobs waiting.

        A blob the store cannot delete keeps its claim, which goes stale and is tried again.
        A claim that took longer than half of STALE_CLAIM to get to its deletion is given up:
        an upload may take a stale claim back and rely on the bytes, so deleting must stay
        well inside it. The rows released are only those still claimed at `claimed_at`."""
        claimed_at = utcnow()
        claimed = await claim(claimed_at)
        if not claimed:
            return []
        if utcnow() - claimed_at > STALE_CLAIM / 2:
            logger.warning("claims of %d blobs took too long; left to go stale", len(claimed))
            report.failed += len(claimed)
            return []
        try:
            failed = set(await self._blob_store.delete_many([blob.digest for blob in claimed]))
        except Exception:  # whatever the store raised: every claim stays, to go stale
            logger.warning("cannot delete %d blobs", len(claimed), exc_info=True)
            failed = {blob.digest for blob in claimed}
        deleted = [blob for blob in claimed if blob.digest not in failed]
        report.failed += len(claimed) - len(deleted)
        if deleted:
            await self._store.release([blob.digest for blob in deleted], claimed_at)
        return deleted


def run_collection(
    collector: GarbageCollector, grace_seconds: int, delete_untagged: bool
) -> Callable[[], Awaitable[dict[str, int]]]:
    """The scheduled job's work: a collection, its counts for the job's record."""

    async def run() -> dict[str, int]:
        report = await collector.collect(grace_seconds, delete_untagged=delete_untagged)
        return report.counts()

    return run
