"""What the garbage collector asks the metadata store, and how it decides there.

Every decision to delete is taken in the database, in the transaction that deletes or claims,
never on the strength of an earlier scan: a scan only names candidates, and each is locked and
checked again where it goes.

- **Links.** A repository's link to a blob goes once no manifest of the repository references
  the blob and the link's grace window has run out (from `released_at`, set when the last
  referencing manifest was deleted, or from `created_at` for a blob no manifest ever used). A
  manifest put locks the links it relies on (FOR SHARE); the collector locks a link (FOR
  UPDATE SKIP LOCKED) and only then deletes it in a statement of its own, whose fresh snapshot
  sees every manifest committed before the lock was granted.
- **Blobs.** A blob row with no link and no manifest reference is *claimed* (`deleting_since`
  set), its bytes deleted, then the row. An upload of the same digest reads the row FOR SHARE
  in the transaction that links it: it waits for a claim being made, and a claimed row makes
  it wait for the row to go and store its bytes again (see BlobRecords.add_and_link).
- **Orphaned bytes** (a blob in the store with no row: a crash between commit and record) are
  claimed by inserting a claimed row, so that the same protocol covers them.

SQLite has one writer at a time, so there every transaction is serial and the locks are moot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from ecrd.blobs.store import StoredBlob
from ecrd.metadata.database import Database
from ecrd.metadata.schema import (
    blobs,
    manifest_blobs,
    manifest_children,
    manifests,
    repository_blobs,
    tags,
)
from ecrd.metadata.statements import insert_ignoring_conflicts


@dataclass(frozen=True)
class ClaimedBlob:
    digest: str
    size: int


@dataclass(frozen=True)
class Reclaimable:
    """What a collection would remove now (a dry run's answer)."""

    links: int
    blobs: int
    bytes: int


def _link_age() -> Any:
    return func.coalesce(repository_blobs.c.released_at, repository_blobs.c.created_at)


def _link_unreferenced() -> Any:
    """No manifest of the link's repository references the linked blob."""
    return ~exists(
        select(manifest_blobs.c.blob_digest)
        .select_from(manifest_blobs.join(manifests, manifests.c.id == manifest_blobs.c.manifest_id))
        .where(
            (manifest_blobs.c.blob_digest == repository_blobs.c.blob_digest)
            & (manifests.c.repository_id == repository_blobs.c.repository_id)
        )
    )


def _blob_unused() -> Any:
    """No repository links the blob and no manifest references it."""
    return ~exists().where(repository_blobs.c.blob_digest == blobs.c.digest) & ~exists().where(
        manifest_blobs.c.blob_digest == blobs.c.digest
    )


def _claimable(cutoff: datetime, stale_claims: datetime) -> Any:
    """Unused, older than the grace window, and not claimed (or claimed by a collector that
    has not finished for so long that it must have died)."""
    return (
        (blobs.c.created_at < cutoff)
        & _blob_unused()
        & (blobs.c.deleting_since.is_(None) | (blobs.c.deleting_since < stale_claims))
    )


class GarbageStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def unused_links(
        self, cutoff: datetime, after: tuple[int, str] | None, limit: int
    ) -> list[tuple[int, str]]:
        """(repository id, digest) of links past their grace window that no manifest of the
        repository references, in key order after `after`."""
        query = select(repository_blobs.c.repository_id, repository_blobs.c.blob_digest).where(
            (_link_age() < cutoff) & _link_unreferenced()
        )
        if after is not None:
            query = query.where(
                or_(
                    repository_blobs.c.repository_id > after[0],
                    and_(
                        repository_blobs.c.repository_id == after[0],
                        repository_blobs.c.blob_digest > after[1],
                    ),
                )
            )
        query = query.order_by(
            repository_blobs.c.repository_id, repository_blobs.c.blob_digest
        ).limit(limit)
        return await self._database.read(
            lambda connection: [(row[0], row[1]) for row in connection.execute(query)]
        )

    async def remove_links(self, links: Sequence[tuple[int, str]], cutoff: datetime) -> int:
        """Delete those of `links` still unused and past their window; return how many went."""
        by_repository: dict[int, list[str]] = defaultdict(list)
        for repository_id, digest in links:
            by_repository[repository_id].append(digest)

        def work(connection: Connection) -> int:
            removed = 0
            for repository_id, digests in by_repository.items():
                named = (repository_blobs.c.repository_id == repository_id) & (
                    repository_blobs.c.blob_digest.in_(digests)
                )
                locked = list(
                    connection.execute(
                        select(repository_blobs.c.blob_digest)
                        .where(named)
                        .with_for_update(skip_locked=True)
                    ).scalars()
                )
                if not locked:
                    continue
                result = connection.execute(
                    delete(repository_blobs).where(
                        (repository_blobs.c.repository_id == repository_id)
                        & repository_blobs.c.blob_digest.in_(locked)
                        & (_link_age() < cutoff)
                        & _link_unreferenced()
                    )
                )
                removed += result.rowcount
            return removed

        return await self._database.write(work)

    async def unused_blobs(
        self, cutoff: datetime, stale_claims: datetime, after: str | None, limit: int
    ) -> list[str]:
        """Digests of blob rows a collection may claim, in digest order after `after`."""
        query = select(blobs.c.digest).where(_claimable(cutoff, stale_claims))
        if after is not None:
            query = query.where(blobs.c.digest > after)
        query = query.order_by(blobs.c.digest).limit(limit)
        return await self._database.read(
            lambda connection: list(connection.execute(query).scalars())
        )

    async def claim(
        self, digests: Sequence[str], cutoff: datetime, stale_claims: datetime, now: datetime
    ) -> list[ClaimedBlob]:
        """Claim those of `digests` still claimable, for this collection to delete."""

        def work(connection: Connection) -> list[ClaimedBlob]:
            locked = list(
                connection.execute(
                    select(blobs.c.digest)
                    .where(blobs.c.digest.in_(digests))
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            if not locked:
                return []
            rows = connection.execute(
                update(blobs)
                .where(blobs.c.digest.in_(locked) & _claimable(cutoff, stale_claims))
                .values(deleting_since=now)
                .returning(blobs.c.digest, blobs.c.size)
            )
            return [ClaimedBlob(row.digest, row.size) for row in rows]

        return await self._database.write(work)

    async def recorded(self, digests: Sequence[str]) -> set[str]:
        """Those of `digests` that have a blob row."""
        query = select(blobs.c.digest).where(blobs.c.digest.in_(digests))
        return await self._database.read(
            lambda connection: set(connection.execute(query).scalars())
        )

    async def claim_orphans(self, stored: Sequence[StoredBlob], now: datetime) -> list[ClaimedBlob]:
        """Claim stored bytes that have no blob row, by inserting a claimed one; bytes whose
        row appeared meanwhile (an upload just recorded them) are left alone."""
        dialect = self._database.dialect

        def work(connection: Connection) -> list[ClaimedBlob]:
            claimed = []
            for blob in stored:
                inserted = connection.execute(
                    insert_ignoring_conflicts(
                        dialect,
                        blobs,
                        digest=blob.digest,
                        size=blob.size,
                        created_at=now,
                        deleting_since=now,
                    ).returning(blobs.c.digest)
                ).first()
                if inserted is not None:
                    claimed.append(ClaimedBlob(blob.digest, blob.size))
            return claimed

        return await self._database.write(work)

    async def release(self, digests: Sequence[str], claimed_at: datetime) -> int:
        """Delete the rows of `digests` this collection claimed at `claimed_at` (their bytes
        are gone); a row an upload took back, or another collection claimed anew, stays.
        Return how many went."""
        statement = delete(blobs).where(
            blobs.c.digest.in_(digests) & (blobs.c.deleting_since == claimed_at) & _blob_unused()
        )
        return await self._database.write(lambda connection: connection.execute(statement).rowcount)

    async def reclaimable(self, cutoff: datetime, stale_claims: datetime) -> Reclaimable:
        """What a collection would remove now: its links, and the blobs whose every link is
        one of those (or that have none), with their bytes."""
        links = select(func.count()).where((_link_age() < cutoff) & _link_unreferenced())
        kept_link = exists().where(
            (repository_blobs.c.blob_digest == blobs.c.digest) & (_link_age() >= cutoff)
        )
        unreferenced = ~exists().where(manifest_blobs.c.blob_digest == blobs.c.digest)
        blob_totals = select(func.count(), func.coalesce(func.sum(blobs.c.size), 0)).where(
            (blobs.c.created_at < cutoff)
            & unreferenced
            & ~kept_link
            & (blobs.c.deleting_since.is_(None) | (blobs.c.deleting_since < stale_claims))
        )

        def work(connection: Connection) -> Reclaimable:
            link_count = connection.execute(links.select_from(repository_blobs)).scalar() or 0
            blob_count, byte_count = connection.execute(blob_totals.select_from(blobs)).one()
            return Reclaimable(int(link_count), int(blob_count), int(byte_count))

        return await self._database.read(work)

    async def untagged_images(
        self, cutoff: datetime, after_id: int | None, limit: int
    ) -> list[tuple[int, int, str]]:
        """(manifest id, repository id, digest) of untagged images pushed before `cutoff` that
        no manifest list of their repository names and that refer to no other image (a
        signature or an SBOM is kept with its subject)."""
        listed = manifests.alias("listing")
        query = select(manifests.c.id, manifests.c.repository_id, manifests.c.digest).where(
            (manifests.c.pushed_at < cutoff)
            & manifests.c.subject_digest.is_(None)
            & ~exists().where(tags.c.manifest_id == manifests.c.id)
            & ~exists(
                select(manifest_children.c.child_digest)
                .select_from(
                    manifest_children.join(listed, listed.c.id == manifest_children.c.manifest_id)
                )
                .where(
                    (manifest_children.c.child_digest == manifests.c.digest)
                    & (listed.c.repository_id == manifests.c.repository_id)
                )
            )
        )
        if after_id is not None:
            query = query.where(manifests.c.id > after_id)
        query = query.order_by(manifests.c.id).limit(limit)
        return await self._database.read(
            lambda connection: [(row[0], row[1], row[2]) for row in connection.execute(query)]
        )
