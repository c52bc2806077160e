"""Blobs and the links that let a repository use them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from ecrd.errors import RepositoryDeleted
from ecrd.metadata.database import Database
from ecrd.metadata.records import Blob, utcnow
from ecrd.metadata.schema import blobs, manifest_blobs, repository_blobs, uploads
from ecrd.metadata.statements import insert_ignoring_conflicts

_LINKED = (
    select(blobs.c.digest, blobs.c.size)
    .select_from(repository_blobs.join(blobs))
    .where(
        (repository_blobs.c.repository_id == bindparam("repository_id"))
        & (repository_blobs.c.blob_digest == bindparam("digest"))
    )
)


def release_blobs_of(connection: Connection, repository_id: int, manifest_id: Any) -> None:
    """Start the garbage collector's grace window on the repository's links to the blobs a
    manifest references: called in the transaction that deletes the manifest (`manifest_id`
    is an id or a scalar subquery naming it). A link another manifest still needs is never
    collected, whatever its window says."""
    connection.execute(
        update(repository_blobs)
        .where(
            (repository_blobs.c.repository_id == repository_id)
            & repository_blobs.c.blob_digest.in_(
                select(manifest_blobs.c.blob_digest).where(
                    manifest_blobs.c.manifest_id == manifest_id
                )
            )
        )
        .values(released_at=utcnow())
    )


class BlobRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def linked(self, repository_id: int, digest: str) -> Blob | None:
        """The blob, if `repository_id` is linked to it."""
        parameters = {"repository_id": repository_id, "digest": digest}

        def work(connection: Connection) -> Blob | None:
            row = connection.execute(_LINKED, parameters).first()
            return None if row is None else Blob(digest=row.digest, size=row.size)

        return await self._database.read(work)

    async def add_and_link(
        self, repository_id: int, digest: str, size: int, finished_upload_id: str | None = None
    ) -> Blob:
        """Record a blob whose bytes are now in the blob store, and link it to the repository.

        `finished_upload_id` names the upload the bytes came from; its row goes in the same
        transaction, so the blob never appears while its upload still looks open. When the
        repository was deleted meanwhile, the blob row is still recorded (its bytes are in the
        store, and a blob without a row could never be found to be collected) and
        RepositoryDeleted is raised.
        """
        dialect = self._database.dialect

        def record(connection: Connection) -> None:
            connection.execute(
                insert_ignoring_conflicts(
                    dialect, blobs, digest=digest, size=size, created_at=utcnow()
                )
            )

        def record_and_link(connection: Connection) -> None:
            record(connection)
            if finished_upload_id is not None:
                connection.execute(delete(uploads).where(uploads.c.id == finished_upload_id))
            connection.execute(
                insert_ignoring_conflicts(
                    dialect,
                    repository_blobs,
                    repository_id=repository_id,
                    blob_digest=digest,
                    created_at=utcnow(),
                )
            )

        try:
            await self._database.write(record_and_link)
        except RepositoryDeleted:
            # The link failed, and took the blob row with it: record the blob alone (rare,
            # so a second transaction costs less than a savepoint on every push).
            await self._database.write(record)
            raise
        return Blob(digest=digest, size=size)

    async def link(self, repository_id: int, digest: str) -> Blob | None:
        """Link an already stored blob to a repository; None when no such blob is recorded."""

        def work(connection: Connection) -> Blob | None:
            row = connection.execute(
                select(blobs.c.digest, blobs.c.size).where(blobs.c.digest == digest)
            ).first()
            if row is None:
                return None
            connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    repository_blobs,
                    repository_id=repository_id,
                    blob_digest=digest,
                    created_at=utcnow(),
                )
            )
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
