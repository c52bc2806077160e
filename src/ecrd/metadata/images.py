"""Images as ECR's API sees them: a manifest with its tags, listed and deleted ECR's way.

Pages are keyset-based: images by manifest id (push order), image ids by (manifest id, tag),
so a page costs one indexed range scan however deep it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, literal, select

from ecrd.errors import ImageTagsChanged, ManifestReferenced
from ecrd.metadata.blobs import release_blobs_of
from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, as_utc_or_none, utcnow
from ecrd.metadata.replication import DELETE, UNTAG, queue_replication
from ecrd.metadata.schema import manifest_children, manifests, tags
from ecrd.metadata.storage_classes import ACTIVE, status_column


@dataclass(frozen=True)
class ImageSummary:
    """A manifest without its bytes, with the tags that point at it (sorted)."""

    id: int
    digest: str
    media_type: str
    artifact_type: str | None
    config_media_type: str | None
    subject_digest: str | None
    size: int
    pushed_at: datetime
    last_pulled_at: datetime | None
    tags: tuple[str, ...]
    # As stored; `metadata.storage_classes.status_of` tells what they mean at a moment.
    image_status: str = ACTIVE
    last_archived_at: datetime | None = None
    last_activated_at: datetime | None = None


@dataclass(frozen=True)
class ImageDeletion:
    """What deleting by tag or digest did: the image's digest, the tags removed, and
    whether the manifest itself went."""

    digest: str
    tags: tuple[str, ...]
    manifest_deleted: bool


_SUMMARY_COLUMNS = (
    manifests.c.id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.artifact_type,
    manifests.c.config_media_type,
    manifests.c.subject_digest,
    manifests.c.size,
    manifests.c.pushed_at,
    manifests.c.last_pulled_at,
    manifests.c.image_status,
    manifests.c.last_archived_at,
    manifests.c.last_activated_at,
)


def _is_tagged() -> Any:
    return exists().where(tags.c.manifest_id == manifests.c.id)


def _tag_status_clause(tag_status: str) -> Any:
    if tag_status == "TAGGED":
        return _is_tagged()
    if tag_status == "UNTAGGED":
        return ~_is_tagged()
    return literal(True)


def _image_status_clause(image_status: str) -> Any:
    """Images whose status is `image_status` now (ANY: every image)."""
    if image_status == "ANY":
        return literal(True)
    return status_column(utcnow()) == image_status


def _summaries(connection: Connection, rows: list[Any]) -> list[ImageSummary]:
    ids = [row.id for row in rows]
    tags_of: dict[int, list[str]] = defaultdict(list)
    if ids:
        for tag_row in connection.execute(
            select(tags.c.manifest_id, tags.c.name)
            .where(tags.c.manifest_id.in_(ids))
            .order_by(tags.c.name)
        ):
            tags_of[tag_row.manifest_id].append(tag_row.name)
    return [
        ImageSummary(
            id=row.id,
            digest=row.digest,
            media_type=row.media_type,
            artifact_type=row.artifact_type,
            config_media_type=row.config_media_type,
            subject_digest=row.subject_digest,
            size=row.size,
            pushed_at=as_utc(row.pushed_at),
            last_pulled_at=as_utc_or_none(row.last_pulled_at),
            tags=tuple(tags_of.get(row.id, ())),
            image_status=row.image_status,
            last_archived_at=as_utc_or_none(row.last_archived_at),
            last_activated_at=as_utc_or_none(row.last_activated_at),
        )
        for row in rows
    ]


def refuse_if_referenced(connection: Connection, repository_id: int, digest: str) -> None:
    """Raise ManifestReferenced when an index in the repository lists `digest`."""
    index_digest = connection.execute(
        select(manifests.c.digest)
        .select_from(
            manifest_children.join(manifests, manifest_children.c.manifest_id == manifests.c.id)
        )
        .where(
            (manifests.c.repository_id == repository_id)
            & (manifest_children.c.child_digest == digest)
        )
        .limit(1)
    ).scalar()
    if index_digest is not None:
        raise ManifestReferenced(
            f"manifest {digest} is referenced by manifest list {index_digest}", index_digest
        )


class ImageStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def page(
        self,
        repository_id: int,
        tag_status: str,
        after_id: int | None,
        limit: int,
        image_status: str = "ANY",
    ) -> list[ImageSummary]:
        """Images in push order, filtered by tag status and image status (ACTIVE, ARCHIVED,
        ACTIVATING or ANY), after manifest `after_id`."""
        query = select(*_SUMMARY_COLUMNS).where(
            (manifests.c.repository_id == repository_id)
            & _tag_status_clause(tag_status)
            & _image_status_clause(image_status)
        )
        if after_id is not None:
            query = query.where(manifests.c.id > after_id)
        query = query.order_by(manifests.c.id).limit(limit)
        return await self._database.read(
            lambda connection: _summaries(connection, list(connection.execute(query)))
        )

    async def by_digests(self, repository_id: int, digests: list[str]) -> list[ImageSummary]:
        query = select(*_SUMMARY_COLUMNS).where(
            (manifests.c.repository_id == repository_id) & manifests.c.digest.in_(digests)
        )
        return await self._database.read(
            lambda connection: _summaries(connection, list(connection.execute(query)))
        )

    async def tagged(self, repository_id: int, tag_names: list[str]) -> dict[str, str]:
        """Digest each of `tag_names` points at (tags that do not exist are left out)."""
        query = (
            select(tags.c.name, manifests.c.digest)
            .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
            .where((tags.c.repository_id == repository_id) & tags.c.name.in_(tag_names))
        )
        return await self._database.read(
            lambda connection: {row.name: row.digest for row in connection.execute(query)}
        )

    async def tag_times(self, repository_id: int, tag_names: list[str]) -> dict[str, datetime]:
        """When each tag was last set (made, or moved to another image)."""
        query = select(tags.c.name, tags.c.updated_at).where(
            (tags.c.repository_id == repository_id) & tags.c.name.in_(tag_names)
        )
        return await self._database.read(
            lambda connection: {
                row.name: as_utc(row.updated_at) for row in connection.execute(query)
            }
        )

    async def id_page(
        self,
        repository_id: int,
        tag_status: str,
        after: tuple[int, str] | None,
        limit: int,
        image_status: str = "ANY",
    ) -> list[tuple[int, str, str | None]]:
        """Image ids as ECR lists them: one (manifest id, digest, tag) per tag, and one with no
        tag per untagged image, in (manifest id, tag) order after `after`; only images of
        `image_status` unless it is ANY."""
        # One walk of the repository's manifests in id order (its (repository_id, id) index),
        # each joined to its tags: a page reads about `limit` rows however large the
        # repository. An untagged image is its one row with no tag, which the keyset treats
        # as "" (no tag is empty, so it sorts before every tag).
        tag = func.coalesce(tags.c.name, "")
        query = (
            select(manifests.c.id, manifests.c.digest, tags.c.name.label("tag"))
            .select_from(
                manifests.outerjoin(
                    tags,
                    (tags.c.manifest_id == manifests.c.id)
                    & (tags.c.repository_id == manifests.c.repository_id),
                )
            )
            .where(
                (manifests.c.repository_id == repository_id) & _image_status_clause(image_status)
            )
        )
        if tag_status == "TAGGED":
            query = query.where(tags.c.name.is_not(None))
        elif tag_status == "UNTAGGED":
            query = query.where(tags.c.name.is_(None))
        if after is not None:
            after_id, after_tag = after
            query = query.where(
                (manifests.c.id >= after_id) & ((manifests.c.id > after_id) | (tag > after_tag))
            )
        query = query.order_by(manifests.c.id, tag).limit(limit)
        return await self._database.read(
            lambda connection: [
                (row.id, row.digest, row.tag or None) for row in connection.execute(query)
            ]
        )

    async def delete_by_tag(self, repository_id: int, tag: str) -> ImageDeletion | None:
        """Remove a tag; when it was the image's last, delete the image too, as ECR does.

        None when the tag does not exist. ManifestReferenced (and nothing changed) when the
        image would go but an index in the repository still lists it.
        """

        def work(connection: Connection) -> ImageDeletion | None:
            row = connection.execute(
                select(manifests.c.id, manifests.c.digest)
                .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
                .where((tags.c.repository_id == repository_id) & (tags.c.name == tag))
            ).first()
            if row is None:
                return None
            other_tags = connection.execute(
                select(tags.c.name)
                .where((tags.c.manifest_id == row.id) & (tags.c.name != tag))
                .limit(1)
            ).first()
            if other_tags is not None:
                connection.execute(
                    delete(tags).where(
                        (tags.c.repository_id == repository_id) & (tags.c.name == tag)
                    )
                )
                queue_replication(connection, repository_id, row.digest, UNTAG)
                return ImageDeletion(row.digest, (tag,), manifest_deleted=False)
            refuse_if_referenced(connection, repository_id, row.digest)
            release_blobs_of(connection, repository_id, row.id)
            connection.execute(delete(manifests).where(manifests.c.id == row.id))
            queue_replication(connection, repository_id, row.digest, DELETE)
            return ImageDeletion(row.digest, (tag,), manifest_deleted=True)

        return await self._database.write(work)

    async def delete_by_digest(
        self,
        repository_id: int,
        digest: str,
        if_tagged_as: tuple[str, ...] | None = None,
        replicate: bool = True,
    ) -> ImageDeletion | None:
        """Delete an image and all its tags; None when it is not in the repository.

        ManifestReferenced (and nothing changed) while an index in the repository lists it.
        With `if_tagged_as` (what a lifecycle run or the collector saw), ImageTagsChanged and
        nothing deleted unless the image has exactly those tags still: decided in the
        transaction that deletes, not on the strength of the earlier look. The delete is
        queued for replication where the rules say (unless `replicate` is off).
        """

        def work(connection: Connection) -> ImageDeletion | None:
            manifest_id = connection.execute(
                select(manifests.c.id).where(
                    (manifests.c.repository_id == repository_id) & (manifests.c.digest == digest)
                )
            ).scalar()
            if manifest_id is None:
                return None
            refuse_if_referenced(connection, repository_id, digest)
            removed_tags = tuple(
                connection.execute(
                    select(tags.c.name)
                    .where(tags.c.manifest_id == manifest_id)
                    .order_by(tags.c.name)
                ).scalars()
            )
            if if_tagged_as is not None and sorted(removed_tags) != sorted(if_tagged_as):
                raise ImageTagsChanged(
                    f"image {digest} is tagged {list(removed_tags)} now, not "
                    f"{sorted(if_tagged_as)} as when it was chosen"
                )
            release_blobs_of(connection, repository_id, manifest_id)
            connection.execute(delete(manifests).where(manifests.c.id == manifest_id))
            if replicate:
                queue_replication(connection, repository_id, digest, DELETE)
            return ImageDeletion(digest, removed_tags, manifest_deleted=True)

        return await self._database.write(work)
