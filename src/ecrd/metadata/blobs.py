"""Blobs and the links that let a repository use them."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, exists, select, update

from ecrd.errors import RepositoryDeleted
from ecrd.metadata.database import Database
from ecrd.metadata.records import Blob, as_utc, utcnow
from ecrd.metadata.schema import (
    blobs,
    manifest_blobs,
    manifests,
    repositories,
    repository_blobs,
    uploads,
)
from ecrd.metadata.statements import insert_ignoring_conflicts, upsert

_LINKED = (
    select(blobs.c.digest, blobs.c.size, repository_blobs.c.released_at)
    .select_from(repository_blobs.join(blobs))
    .where(
        (repository_blobs.c.repository_id == bindparam("repository_id"))
        & (repository_blobs.c.blob_digest == bindparam("digest"))
    )
)


def _referenced_in_repository(except_manifest: int | None = None) -> Any:
    """Some manifest of the link's repository (other than `except_manifest`) references the
    linked blob."""
    condition = (manifest_blobs.c.blob_digest == repository_blobs.c.blob_digest) & (
        manifests.c.repository_id == repository_blobs.c.repository_id
    )
    if except_manifest is not None:
        condition = condition & (manifests.c.id != except_manifest)
    return exists(
        select(manifest_blobs.c.blob_digest)
        .select_from(manifest_blobs.join(manifests, manifests.c.id == manifest_blobs.c.manifest_id))
        .where(condition)
    )


def release_blobs_of(connection: Connection, repository_id: int, manifest_id: int) -> None:
    """Start the garbage collector's grace window on the repository's links to the blobs a
    manifest references that no other manifest of the repository does: called in the
    transaction that deletes the manifest."""
    connection.execute(
        update(repository_blobs)
        .where(
            (repository_blobs.c.repository_id == repository_id)
            & repository_blobs.c.blob_digest.in_(
                select(manifest_blobs.c.blob_digest).where(
                    manifest_blobs.c.manifest_id == manifest_id
                )
            )
            & ~_referenced_in_repository(except_manifest=manifest_id)
        )
        .values(released_at=utcnow())
    )


# A collector's claim this old belongs to a collector that died between claiming a blob and
# deleting it (deleting takes seconds): another collection may claim the blob again, and an
# upload of the same digest may take it back.
STALE_CLAIM = timedelta(minutes=10)
# A released link renewed this recently is not written again (a layer of a deleted image
# pulled by digest over and over costs one write a second at most).
RENEWED_FOR = timedelta(seconds=1)


class BlobBeingCollected(Exception):
    """The garbage collector has claimed the blob and is deleting its bytes: store them again
    once the row has gone."""

    def __init__(self, digest: str, since: datetime) -> None:
        super().__init__(f"blob {digest} is being collected since {since.isoformat()}")
        self.digest = digest


def _take_or_refuse_claim(connection: Connection, digest: str) -> bool:
    """Lock the blob row against a claim (FOR SHARE waits for one being made). Raise
    BlobBeingCollected when the collector holds it; clear a dead collector's claim and return
    True (the caller must then put its bytes in place again)."""
    row = connection.execute(_CLAIM_OF, {"digest": digest}).first()
    if row is None or row.deleting_since is None:
        return False
    since = as_utc(row.deleting_since)
    if since > utcnow() - STALE_CLAIM:
        raise BlobBeingCollected(digest, since)
    connection.execute(update(blobs).where(blobs.c.digest == digest).values(deleting_since=None))
    return True


def _use_link(connection: Connection, dialect: str, repository_id: int, digest: str) -> None:
    """Make or renew the repository's link: whoever links a blob is about to use it, so its
    grace window starts again (a re-upload or mount of a layer of a deleted image)."""
    connection.execute(
        _link_statement(dialect),
        {"repository_id": repository_id, "blob_digest": digest, "created_at": utcnow()},
    )


# The statements of a push's blob record, built once with bound parameters: building one with
# its values in it (and computing its cache key) cost more than running it, ~200 µs each.
_CLAIM_OF = (
    select(blobs.c.deleting_since)
    .where(blobs.c.digest == bindparam("digest"))
    .with_for_update(read=True)
)
_REPOSITORY_KEY_SHARE = (
    select(repositories.c.id)
    .where(repositories.c.id == bindparam("repository_id"))
    .with_for_update(read=True, key_share=True)
)
_DROP_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("upload_id"))


@lru_cache(maxsize=4)
def _link_statement(dialect: str) -> Any:
    return upsert(
        dialect,
        repository_blobs,
        ["repository_id", "blob_digest"],
        repository_id=bindparam("repository_id"),
        blob_digest=bindparam("blob_digest"),
        created_at=bindparam("created_at"),
        released_at=None,
    )


@lru_cache(maxsize=4)
def _record_statement(dialect: str) -> Any:
    return insert_ignoring_conflicts(
        dialect,
        blobs,
        digest=bindparam("digest"),
        size=bindparam("size"),
        created_at=bindparam("created_at"),
    ).returning(blobs.c.digest)


class BlobRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def linked(self, repository_id: int, digest: str) -> Blob | None:
        """The blob, if `repository_id` is linked to it. A link whose images were deleted is
        renewed by being asked for (see `_renew`): one write, only for such links."""
        parameters = {"repository_id": repository_id, "digest": digest}

        row = await self._database.read_first(_LINKED, parameters)
        if row is None:
            return None
        released = row.released_at
        if (
            released is not None
            and as_utc(released) < utcnow() - RENEWED_FOR
            and not await self._renew(repository_id, digest)
        ):
            return None
        return Blob(digest=row.digest, size=row.size)

    async def _renew(self, repository_id: int, digest: str) -> bool:
        """Start a released link's grace window again: a client that finds the blob present
        (a HEAD before a push) may rely on it for that long, though no manifest references it
        yet. A link a manifest has referenced again since is simply not released any more (so
        it is written once, not on every pull). False when the link went meanwhile (the
        collector took it first)."""
        statement = (
            update(repository_blobs)
            .where(
                (repository_blobs.c.repository_id == repository_id)
                & (repository_blobs.c.blob_digest == digest)
            )
            .values(released_at=case((_referenced_in_repository(), None), else_=utcnow()))
        )
        return await self._database.write(
            lambda connection: bool(connection.execute(statement).rowcount)
        )

    async def add_and_link(
        self, repository_id: int, digest: str, size: int, finished_upload_id: str | None = None
    ) -> tuple[Blob, bool]:
        """Record a blob whose bytes are now in the blob store, and link it to the repository;
        return it, and whether its row is new (or was taken back from a dead collector).

        A new row means the bytes the caller's commit found in place may have been an older
        copy the collector deleted (with its row) before this transaction: the caller puts
        its bytes in place once more, now that the link keeps any collector away.

        `finished_upload_id` names the upload the bytes came from; its row goes in the same
        transaction, so the blob never appears while its upload still looks open. Raises
        BlobBeingCollected (and records nothing) while the garbage collector deletes an older
        copy of the same bytes: the caller commits its bytes again once the claim is gone.
        When the repository was deleted meanwhile, the blob row is still recorded (its bytes
        are in the store, and a blob without a row could never be found to be collected) and
        RepositoryDeleted is raised.
        """
        dialect = self._database.dialect

        def record(connection: Connection) -> bool:
            inserted = connection.execute(
                _record_statement(dialect), {"digest": digest, "size": size, "created_at": utcnow()}
            ).first()
            return inserted is not None

        def record_and_link(connection: Connection) -> bool:
            # The repository row first (PostgreSQL; SQLite's one writer needs none), in the
            # order DeleteRepository takes them: it locks the row, then its cascade deletes
            # the upload rows. Deleting the upload row first and then linking (which waits
            # for the row's key) deadlocked with a forced delete.
            repository = connection.execute(
                _REPOSITORY_KEY_SHARE, {"repository_id": repository_id}
            ).first()
            if repository is None:
                raise RepositoryDeleted()
            fresh = record(connection)
            fresh = _take_or_refuse_claim(connection, digest) or fresh
            if finished_upload_id is not None:
                connection.execute(_DROP_UPLOAD, {"upload_id": finished_upload_id})
            _use_link(connection, dialect, repository_id, digest)
            return fresh

        try:
            fresh = await self._database.write(record_and_link)
        except RepositoryDeleted:
            # The link failed, and took the blob row with it: record the blob alone (rare,
            # so a second transaction costs less than a savepoint on every push).
            await self._database.write(record)
            raise
        return Blob(digest=digest, size=size), fresh

    async def link(self, repository_id: int, digest: str) -> Blob | None:
        """Link an already stored blob to a repository; None when no such blob is recorded
        (or the garbage collector is deleting it)."""

        def work(connection: Connection) -> Blob | None:
            row = connection.execute(
                select(blobs.c.digest, blobs.c.size, blobs.c.deleting_since)
                .where(blobs.c.digest == digest)
                # FOR SHARE: a collector's claim either waits for this link, or is seen here.
                .with_for_update(read=True)
            ).first()
            if row is None or row.deleting_since is not None:
                # Being collected: the client uploads the bytes instead.
                return None
            _use_link(connection, self._database.dialect, repository_id, digest)
            return Blob(digest=row.digest, size=row.size)

        return await self._database.write(work)

    async def unlink(self, repository_id: int, digest: str) -> bool:
        """Remove the repository's link to a blob; False when there was none."""

        def work(connection: Connection) -> bool:
            result = connection.execute(
                delete(repository_blobs).where(
                    (repository_blobs.c.repository_id == repository_id)
                    & (repository_blobs.c.blob_digest == digest)
                )
            )
            return bool(result.rowcount)

        return await self._database.write(work)
