"""Lifecycle policies: the policy on its repository, what a run evaluates, and previews.

    repositories.lifecycle_policy_text    the policy (JSON text as given), NULL for none
    repositories.lifecycle_evaluated_at   when a run last evaluated it (lastEvaluatedAt)
    lifecycle_previews                    one preview per repository; a new one replaces it
    lifecycle_preview_results             its answer, one row per image, keyed by position

Every list here is a keyset page: repositories by id, images by manifest id, preview results
by position, so a page is one indexed range scan however deep it is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, func, insert, or_, select, update

from ecrd.errors import RepositoryDeleted
from ecrd.metadata.database import Database
from ecrd.metadata.records import Repository, as_utc, as_utc_or_none, utcnow
from ecrd.metadata.repositories import COLUMNS as REPOSITORY_COLUMNS
from ecrd.metadata.repositories import repository_record
from ecrd.metadata.schema import (
    lifecycle_preview_results,
    lifecycle_previews,
    manifest_children,
    manifests,
    registries,
    repositories,
    tags,
)
from ecrd.metadata.storage_classes import ARCHIVED, activated_at, status_of

# A preview's status as stored; EXPIRED (and FAILED for a preview nobody finished) are how
# the domain reads an old row.
IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
# Rows per INSERT when a preview's results are written.
_RESULT_BATCH = 500


@dataclass(frozen=True)
class LifecyclePolicyRecord:
    text: str
    evaluated_at: datetime | None


@dataclass(frozen=True)
class PolicyHolder:
    """A repository with a lifecycle policy, and the registry it is in."""

    repository: Repository
    account_id: str
    region: str
    policy_text: str


@dataclass(frozen=True)
class LifecycleCandidate:
    """An image as a lifecycle policy sees it."""

    id: int
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    last_pulled_at: datetime | None
    # ACTIVE, ARCHIVED or ACTIVATING (manifests.image_status).
    image_status: str
    last_archived_at: datetime | None
    last_activated_at: datetime | None
    # An index in the repository lists it (it cannot be deleted before that index).
    referenced_by_index: bool
    # An index in the repository that is not archived lists it (it cannot be archived before
    # that index).
    listed_by_active_index: bool
    # It lists other manifests (so it goes before them when both expire).
    is_index: bool


@dataclass(frozen=True)
class PreviewRecord:
    policy_text: str
    status: str  # as stored: IN_PROGRESS, COMPLETE or FAILED
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class PreviewResultRecord:
    position: int
    image_digest: str
    image_tags: tuple[str, ...]
    image_pushed_at: datetime
    action_type: str  # EXPIRE or TRANSITION
    target_storage_class: str | None
    applied_rule_priority: int
    storage_class: str  # STANDARD or ARCHIVE


@dataclass(frozen=True)
class PreviewSummaryRecord:
    expiring: int
    # target storage class -> how many images go there
    transitioning: dict[str, int]


@dataclass(frozen=True)
class ImageTimes:
    """What the test hook may set on an image; None leaves a time as it is."""

    pushed_at: datetime | None = None
    # For the nullable times, `clear_*` sets NULL.
    last_pulled_at: datetime | None = None
    clear_last_pulled_at: bool = False
    last_archived_at: datetime | None = None
    clear_last_archived_at: bool = False


def _preview_record(row: Any) -> PreviewRecord:
    return PreviewRecord(
        policy_text=row.policy_text,
        status=row.status,
        started_at=as_utc(row.started_at),
        finished_at=as_utc_or_none(row.finished_at),
    )


def _result_record(row: Any) -> PreviewResultRecord:
    return PreviewResultRecord(
        position=row.position,
        image_digest=row.image_digest,
        image_tags=tuple(json.loads(row.image_tags_json or "[]")),
        image_pushed_at=as_utc(row.image_pushed_at),
        action_type=row.action_type,
        target_storage_class=row.target_storage_class,
        applied_rule_priority=row.applied_rule_priority,
        storage_class=row.storage_class,
    )


def _lock_repository(connection: Connection, repository_id: int) -> bool:
    """Lock the repository's row (PostgreSQL; SQLite writers are serial anyway), so that
    starts of one repository's previews queue; False when the repository is gone."""
    found = connection.execute(
        select(repositories.c.id).where(repositories.c.id == repository_id).with_for_update()
    ).first()
    return found is not None


class LifecycleStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    # The policy.

    async def policy(self, repository_id: int) -> LifecyclePolicyRecord | None:
        query = select(
            repositories.c.lifecycle_policy_text, repositories.c.lifecycle_evaluated_at
        ).where(repositories.c.id == repository_id)

        def work(connection: Connection) -> LifecyclePolicyRecord | None:
            row = connection.execute(query).first()
            if row is None or row.lifecycle_policy_text is None:
                return None
            return LifecyclePolicyRecord(
                row.lifecycle_policy_text, as_utc_or_none(row.lifecycle_evaluated_at)
            )

        return await self._database.read(work)

    async def set_policy(self, repository_id: int, policy_text: str | None) -> None:
        """Set (or with None remove) the policy; a new policy has not been evaluated yet."""
        statement = (
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(lifecycle_policy_text=policy_text, lifecycle_evaluated_at=None)
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def mark_evaluated(self, repository_id: int, policy_text: str, at: datetime) -> None:
        """Record a run at `at`, unless the policy was changed or removed meanwhile."""
        statement = (
            update(repositories)
            .where(
                (repositories.c.id == repository_id)
                & (repositories.c.lifecycle_policy_text == policy_text)
            )
            .values(lifecycle_evaluated_at=at)
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def holders_page(
        self,
        after_id: int | None,
        limit: int,
        account_id: str | None = None,
        region: str | None = None,
        name: str | None = None,
    ) -> list[PolicyHolder]:
        """ECR repositories with a lifecycle policy, by id after `after_id`, narrowed to an
        account, region and name when given."""
        query = (
            select(
                *REPOSITORY_COLUMNS,
                repositories.c.lifecycle_policy_text,
                registries.c.account_id,
                registries.c.region,
            )
            .select_from(
                repositories.join(registries, registries.c.id == repositories.c.registry_id)
            )
            .where(
                repositories.c.lifecycle_policy_text.is_not(None) & (registries.c.kind == "private")
            )
        )
        if after_id is not None:
            query = query.where(repositories.c.id > after_id)
        if account_id is not None:
            query = query.where(registries.c.account_id == account_id)
        if region is not None:
            query = query.where(registries.c.region == region)
        if name is not None:
            query = query.where(repositories.c.name == name)
        query = query.order_by(repositories.c.id).limit(limit)
        return await self._database.read(
            lambda connection: [
                PolicyHolder(
                    repository_record(row), row.account_id, row.region, row.lifecycle_policy_text
                )
                for row in connection.execute(query)
            ]
        )

    # What a policy is evaluated over.

    async def candidates_page(
        self, repository_id: int, after_id: int | None, limit: int
    ) -> list[LifecycleCandidate]:
        """The repository's images in manifest id order after `after_id`, with their tags,
        storage status and how they stand to the repository's indexes."""
        parent = manifests.alias("parent")
        referenced = exists().where(
            (manifest_children.c.manifest_id == parent.c.id)
            & (parent.c.repository_id == repository_id)
            & (manifest_children.c.child_digest == manifests.c.digest)
        )
        listed_by_active = exists().where(
            (manifest_children.c.manifest_id == parent.c.id)
            & (parent.c.repository_id == repository_id)
            & (manifest_children.c.child_digest == manifests.c.digest)
            & (parent.c.image_status != ARCHIVED)
        )
        lists_others = exists().where(manifest_children.c.manifest_id == manifests.c.id)
        query = select(
            manifests.c.id,
            manifests.c.digest,
            manifests.c.pushed_at,
            manifests.c.last_pulled_at,
            manifests.c.image_status,
            manifests.c.last_archived_at,
            manifests.c.last_activated_at,
            referenced.label("referenced_by_index"),
            listed_by_active.label("listed_by_active_index"),
            lists_others.label("is_index"),
        ).where(manifests.c.repository_id == repository_id)
        if after_id is not None:
            query = query.where(manifests.c.id > after_id)
        query = query.order_by(manifests.c.id).limit(limit)

        def work(connection: Connection) -> list[LifecycleCandidate]:
            rows = list(connection.execute(query))
            # A restore's end is stored ahead (see metadata/storage_classes.py): read the
            # status as it is now, not as stored.
            now = utcnow()
            tags_of: dict[int, list[str]] = defaultdict(list)
            if rows:
                for tag_row in connection.execute(
                    select(tags.c.manifest_id, tags.c.name)
                    .where(tags.c.manifest_id.in_([row.id for row in rows]))
                    .order_by(tags.c.name)
                ):
                    tags_of[tag_row.manifest_id].append(tag_row.name)
            return [
                LifecycleCandidate(
                    id=row.id,
                    digest=row.digest,
                    tags=tuple(tags_of.get(row.id, ())),
                    pushed_at=as_utc(row.pushed_at),
                    last_pulled_at=as_utc_or_none(row.last_pulled_at),
                    image_status=status_of(row.image_status, row.last_activated_at, now),
                    last_archived_at=as_utc_or_none(row.last_archived_at),
                    last_activated_at=activated_at(row.image_status, row.last_activated_at, now),
                    referenced_by_index=bool(row.referenced_by_index),
                    listed_by_active_index=bool(row.listed_by_active_index),
                    is_index=bool(row.is_index),
                )
                for row in rows
            ]

        return await self._database.read(work)

    # Previews.

    async def preview(self, repository_id: int) -> PreviewRecord | None:
        query = select(lifecycle_previews).where(
            lifecycle_previews.c.repository_id == repository_id
        )

        def work(connection: Connection) -> PreviewRecord | None:
            row = connection.execute(query).first()
            return None if row is None else _preview_record(row)

        return await self._database.read(work)

    async def start_preview(
        self, repository_id: int, policy_text: str, started_at: datetime, busy_since: datetime
    ) -> PreviewRecord | None:
        """Replace the repository's preview by a new one IN_PROGRESS, dropping the old
        results; None (and nothing changed) while a preview started after `busy_since` is
        still IN_PROGRESS; RepositoryDeleted when the repository is gone. All in one
        transaction, under the repository's row lock, so of two starts at once one begins and
        the other finds it."""

        def work(connection: Connection) -> PreviewRecord | None:
            if not _lock_repository(connection, repository_id):
                raise RepositoryDeleted()
            row = connection.execute(
                select(lifecycle_previews).where(
                    lifecycle_previews.c.repository_id == repository_id
                )
            ).first()
            if (
                row is not None
                and row.status == IN_PROGRESS
                and as_utc(row.started_at) > busy_since
            ):
                return None
            connection.execute(
                delete(lifecycle_preview_results).where(
                    lifecycle_preview_results.c.repository_id == repository_id
                )
            )
            connection.execute(
                delete(lifecycle_previews).where(
                    lifecycle_previews.c.repository_id == repository_id
                )
            )
            connection.execute(
                insert(lifecycle_previews).values(
                    repository_id=repository_id,
                    policy_text=policy_text,
                    status=IN_PROGRESS,
                    started_at=started_at,
                    finished_at=None,
                )
            )
            return PreviewRecord(policy_text, IN_PROGRESS, started_at, None)

        return await self._database.write(work)

    async def finish_preview(
        self,
        repository_id: int,
        started_at: datetime,
        results: Sequence[PreviewResultRecord],
        finished_at: datetime,
    ) -> bool:
        """Store the results of the preview started at `started_at` and mark it COMPLETE, in
        one transaction; False (nothing written) when that preview is no longer the
        repository's, IN_PROGRESS (another replaced it, or the repository is gone)."""

        def work(connection: Connection) -> bool:
            if not self._is_current(connection, repository_id, started_at):
                return False
            rows = [
                {
                    "repository_id": repository_id,
                    "position": result.position,
                    "image_digest": result.image_digest,
                    "image_tags_json": json.dumps(list(result.image_tags)),
                    "image_pushed_at": result.image_pushed_at,
                    "action_type": result.action_type,
                    "target_storage_class": result.target_storage_class,
                    "applied_rule_priority": result.applied_rule_priority,
                    "storage_class": result.storage_class,
                }
                for result in results
            ]
            for first in range(0, len(rows), _RESULT_BATCH):
                connection.execute(
                    insert(lifecycle_preview_results), rows[first : first + _RESULT_BATCH]
                )
            connection.execute(
                update(lifecycle_previews)
                .where(lifecycle_previews.c.repository_id == repository_id)
                .values(status=COMPLETE, finished_at=finished_at)
            )
            return True

        return await self._database.write(work)

    async def fail_preview(
        self, repository_id: int, started_at: datetime, finished_at: datetime
    ) -> bool:
        """Mark the preview started at `started_at` FAILED, if it is still IN_PROGRESS."""

        def work(connection: Connection) -> bool:
            if not self._is_current(connection, repository_id, started_at):
                return False
            connection.execute(
                update(lifecycle_previews)
                .where(lifecycle_previews.c.repository_id == repository_id)
                .values(status=FAILED, finished_at=finished_at)
            )
            return True

        return await self._database.write(work)

    @staticmethod
    def _is_current(connection: Connection, repository_id: int, started_at: datetime) -> bool:
        row = connection.execute(
            select(lifecycle_previews.c.status, lifecycle_previews.c.started_at)
            .where(lifecycle_previews.c.repository_id == repository_id)
            .with_for_update()
        ).first()
        return (
            row is not None and row.status == IN_PROGRESS and as_utc(row.started_at) == started_at
        )

    async def preview_results(
        self,
        repository_id: int,
        tag_status: str,
        after_position: int | None,
        limit: int,
        digests: Sequence[str] = (),
        tag_names: Sequence[str] = (),
    ) -> list[PreviewResultRecord]:
        """Results in position order after `after_position`, filtered by tag status, and to
        those with one of `digests` or one of `tag_names` when either is given."""
        results = lifecycle_preview_results
        query = select(results).where(results.c.repository_id == repository_id)
        if tag_status == "TAGGED":
            query = query.where(results.c.image_tags_json != "[]")
        elif tag_status == "UNTAGGED":
            query = query.where(results.c.image_tags_json == "[]")
        if digests or tag_names:
            # Tags are JSON strings of [A-Za-z0-9_.-] (no quote or backslash to escape), so
            # '"<tag>"' occurs in the list exactly when the tag is one of its elements; the
            # caller checks each match again.
            wanted: list[ColumnElement[bool]] = []
            if digests:
                wanted.append(results.c.image_digest.in_(list(digests)))
            wanted += [
                results.c.image_tags_json.contains(json.dumps(tag), autoescape=True)
                for tag in tag_names
            ]
            query = query.where(or_(*wanted))
        if after_position is not None:
            query = query.where(results.c.position > after_position)
        query = query.order_by(results.c.position).limit(limit)
        return await self._database.read(
            lambda connection: [_result_record(row) for row in connection.execute(query)]
        )

    async def preview_summary(self, repository_id: int) -> PreviewSummaryRecord:
        results = lifecycle_preview_results
        query = (
            select(results.c.action_type, results.c.target_storage_class, func.count())
            .where(results.c.repository_id == repository_id)
            .group_by(results.c.action_type, results.c.target_storage_class)
        )

        def work(connection: Connection) -> PreviewSummaryRecord:
            expiring = 0
            transitioning: dict[str, int] = {}
            for action_type, target, count in connection.execute(query):
                if action_type == "EXPIRE":
                    expiring += int(count)
                elif target is not None:
                    transitioning[target] = transitioning.get(target, 0) + int(count)
            return PreviewSummaryRecord(expiring, transitioning)

        return await self._database.read(work)

    async def drop_results_finished_before(self, before: datetime) -> int:
        """Delete the results of previews that finished before `before` (their rows stay and
        read as expired); return how many previews lost them."""
        finished = select(lifecycle_previews.c.repository_id).where(
            lifecycle_previews.c.finished_at < before
        )

        def work(connection: Connection) -> int:
            ids = list(
                connection.execute(
                    finished.where(
                        exists().where(
                            lifecycle_preview_results.c.repository_id
                            == lifecycle_previews.c.repository_id
                        )
                    )
                ).scalars()
            )
            if ids:
                connection.execute(
                    delete(lifecycle_preview_results).where(
                        lifecycle_preview_results.c.repository_id.in_(ids)
                    )
                )
            return len(ids)

        return await self._database.write(work)

    # The test hook.

    async def set_image_times(
        self, account_id: str, region: str, repository_name: str, digest: str, times: ImageTimes
    ) -> str | None:
        """Set an image's times (tests only); None when it exists, else what is missing:
        "repository" or "image"."""
        values: dict[str, Any] = {}
        if times.pushed_at is not None:
            values["pushed_at"] = times.pushed_at
        if times.last_pulled_at is not None or times.clear_last_pulled_at:
            values["last_pulled_at"] = times.last_pulled_at
        if times.last_archived_at is not None or times.clear_last_archived_at:
            values["last_archived_at"] = times.last_archived_at
        repository_query = (
            select(repositories.c.id)
            .select_from(
                repositories.join(registries, registries.c.id == repositories.c.registry_id)
            )
            .where(
                (registries.c.account_id == account_id)
                & (registries.c.region == region)
                & (registries.c.kind == "private")
                & (repositories.c.name == repository_name)
            )
        )

        def work(connection: Connection) -> str | None:
            repository_id = connection.execute(repository_query).scalar()
            if repository_id is None:
                return "repository"
            manifest_id = connection.execute(
                select(manifests.c.id).where(
                    (manifests.c.repository_id == repository_id) & (manifests.c.digest == digest)
                )
            ).scalar()
            if manifest_id is None:
                return "image"
            if values:
                connection.execute(
                    update(manifests).where(manifests.c.id == manifest_id).values(**values)
                )
            return None

        return await self._database.write(work)
