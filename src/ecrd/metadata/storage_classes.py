"""ECR's storage classes: an image is ACTIVE (STANDARD), ARCHIVED (ARCHIVE) or ACTIVATING
(being restored to STANDARD, not pullable yet).

A restore ends by itself, with no writer: it stores ACTIVATING with `last_activated_at` set to
the moment the image becomes ACTIVE (now + the restore time), and every read takes a stored
ACTIVATING whose `last_activated_at` has passed for ACTIVE, in Python (`status_of`) or in SQL
(`status_column`, for filters). Every process sharing the database therefore agrees at every
moment, whatever its own `archive_restore_seconds` says (the process that restored decided the
end once), and the row changes only when something changes the image again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, select, update

from ecrd.errors import ManifestNotFound, RepositoryDeleted, StorageClassChangeRefused
from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import manifest_children, manifests, repositories

ACTIVE = "ACTIVE"
ARCHIVED = "ARCHIVED"
ACTIVATING = "ACTIVATING"
IMAGE_STATUSES = (ACTIVE, ARCHIVED, ACTIVATING)
# The storage classes a caller names: STANDARD holds ACTIVE (and ACTIVATING) images.
STANDARD = "STANDARD"
ARCHIVE = "ARCHIVE"


def status_of(stored: str, last_activated_at: datetime | None, now: datetime) -> str:
    """The image status at `now` of a row that stores `stored` and `last_activated_at`."""
    if stored == ACTIVATING and last_activated_at is not None and as_utc(last_activated_at) <= now:
        return ACTIVE
    return stored


def activated_at(stored: str, last_activated_at: datetime | None, now: datetime) -> datetime | None:
    """When the image was last restored, as ECR's lastActivatedAt shows it: a restore still
    under way has not happened yet."""
    if last_activated_at is None or status_of(stored, last_activated_at, now) == ACTIVATING:
        return None
    return as_utc(last_activated_at)


def status_column(now: datetime) -> ColumnElement[str]:
    """`status_of` as a SQL expression over the manifests table."""
    finished = (manifests.c.image_status == ACTIVATING) & (manifests.c.last_activated_at <= now)
    return case((finished, ACTIVE), else_=manifests.c.image_status)


@dataclass(frozen=True)
class StatusChange:
    """An image's status right after a storage class change, and its archive times."""

    digest: str
    status: str
    last_archived_at: datetime | None
    last_activated_at: datetime | None


class StorageClassStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def change(
        self, repository_id: int, digest: str, target: str, restore_seconds: float
    ) -> StatusChange:
        """Move an image to `target` (ARCHIVE or STANDARD), in one transaction.

        ARCHIVE takes an ACTIVE image to ARCHIVED; STANDARD an ARCHIVED one to ACTIVATING,
        which becomes ACTIVE `restore_seconds` later (at once for 0). Raises ManifestNotFound,
        RepositoryDeleted, and StorageClassChangeRefused for an image already in the class or
        being restored, an image a manifest list that is not archived lists (archive the list
        first, as it must be deleted first), and a manifest list whose images are archived
        (restore them first).
        """

        def work(connection: Connection) -> StatusChange:
            # One change per repository at a time (FOR NO KEY UPDATE on PostgreSQL, which
            # leaves pushes into it alone), so a list and its images are never changed
            # crosswise; SQLite's one writer needs none.
            locked = connection.execute(
                select(repositories.c.id)
                .where(repositories.c.id == repository_id)
                .with_for_update(key_share=True)
            ).first()
            if locked is None:
                raise RepositoryDeleted()
            row = connection.execute(
                select(
                    manifests.c.id,
                    manifests.c.image_status,
                    manifests.c.last_archived_at,
                    manifests.c.last_activated_at,
                ).where(
                    (manifests.c.repository_id == repository_id) & (manifests.c.digest == digest)
                )
            ).first()
            if row is None:
                raise ManifestNotFound(f"manifest {digest} is not in the repository")
            now = utcnow()
            status = status_of(row.image_status, row.last_activated_at, now)
            if status == ACTIVATING:
                raise StorageClassChangeRefused(f"image {digest} is being restored")
            values: dict[str, Any]
            if target == ARCHIVE:
                if status == ARCHIVED:
                    raise StorageClassChangeRefused(f"image {digest} is archived already")
                _refuse_if_listed(connection, repository_id, digest)
                values = {"image_status": ARCHIVED, "last_archived_at": now}
            else:
                if status == ACTIVE:
                    raise StorageClassChangeRefused(f"image {digest} is in STANDARD already")
                _refuse_if_children_archived(connection, repository_id, row.id)
                values = {
                    "image_status": ACTIVATING if restore_seconds > 0 else ACTIVE,
                    "last_activated_at": now + timedelta(seconds=restore_seconds),
                }
            connection.execute(
                update(manifests)
                .where(manifests.c.id == row.id)
                .values(status_changed_at=now, **values)
            )
            archived_at = values.get("last_archived_at", row.last_archived_at)
            activated = values.get("last_activated_at", row.last_activated_at)
            stored_status = values["image_status"]
            return StatusChange(
                digest=digest,
                status=status_of(stored_status, activated, now),
                last_archived_at=None if archived_at is None else as_utc(archived_at),
                last_activated_at=activated_at(stored_status, activated, now),
            )

        return await self._database.write(work)


def _refuse_if_listed(connection: Connection, repository_id: int, digest: str) -> None:
    """An image a manifest list still serves may not go to the archive under it."""
    index_digest = connection.execute(
        select(manifests.c.digest)
        .select_from(
            manifest_children.join(manifests, manifest_children.c.manifest_id == manifests.c.id)
        )
        .where(
            (manifests.c.repository_id == repository_id)
            & (manifest_children.c.child_digest == digest)
            & (manifests.c.image_status != ARCHIVED)
        )
        .limit(1)
    ).scalar()
    if index_digest is not None:
        raise StorageClassChangeRefused(
            f"image {digest} is referenced by manifest list {index_digest}, which is not archived"
        )


def _refuse_if_children_archived(connection: Connection, repository_id: int, index_id: int) -> None:
    """A manifest list restored over archived images would be pulled but not its images."""
    child_digest = connection.execute(
        select(manifests.c.digest)
        .select_from(
            manifest_children.join(
                manifests,
                (manifests.c.digest == manifest_children.c.child_digest)
                & (manifests.c.repository_id == repository_id),
            )
        )
        .where(
            (manifest_children.c.manifest_id == index_id) & (manifests.c.image_status == ARCHIVED)
        )
        .limit(1)
    ).scalar()
    if child_digest is not None:
        raise StorageClassChangeRefused(
            f"the manifest list references archived image {child_digest}: restore it first"
        )
