"""Replication backfills: a registry's existing images replicated to one destination, with a
result per image and tag.

    PREPARING    started; the job lists the images the rules send to the destination
    IN_PROGRESS  results listed (PENDING each); the job queues their images for replication
                 in order (QUEUED), and records each outcome the replication job reaches
    STOPPING     StopReplicationBackfill asked; the job ends it at its next look
    COMPLETE, FAILED, STOPPED   ended (kept 90 days, as ECR keeps them)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from ecrd.errors import (
    BackfillInProgress,
    BackfillNotFound,
    BackfillStatusInvalid,
    TooManyBackfills,
)
from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, as_utc_or_none, utcnow
from ecrd.metadata.schema import (
    manifest_children,
    manifests,
    replication_backfill_results,
    replication_backfills,
    tags,
)
from ecrd.metadata.statements import serialise

PREPARING = "PREPARING"
IN_PROGRESS = "IN_PROGRESS"
STOPPING = "STOPPING"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
STOPPED = "STOPPED"
UNDER_WAY = (PREPARING, IN_PROGRESS, STOPPING)
# A result's status before it ends: PENDING, then QUEUED once its image is queued for
# replication (the replication job copies it; its outcome is read back from there).
PENDING = "PENDING"
QUEUED = "QUEUED"
NOT_ENDED = (PENDING, QUEUED)
# ECR's quota of backfills under way in one registry.
MAX_UNDER_WAY = 10
BACKFILL_LOCK = 7411005  # beside pull_through_rules.RULE_LOCK


@dataclass(frozen=True)
class Backfill:
    id: str
    registry_id: int
    destination_account: str
    destination_region: str
    status: str
    failure_code: str | None
    total: int | None
    completed: int
    failed: int
    failure_codes: tuple[str, ...]
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class BackfillResult:
    position: int
    repository_name: str
    digest: str
    tag: str | None
    status: str
    failure_code: str | None


def _backfill(row: Any) -> Backfill:
    return Backfill(
        id=row.id,
        registry_id=row.registry_id,
        destination_account=row.destination_account,
        destination_region=row.destination_region,
        status=row.status,
        failure_code=row.failure_code,
        total=row.total_count,
        completed=row.completed_count,
        failed=row.failed_count,
        failure_codes=tuple(json.loads(row.failure_codes_json)),
        started_at=as_utc(row.started_at),
        ended_at=as_utc_or_none(row.ended_at),
    )


def _result(row: Any) -> BackfillResult:
    return BackfillResult(
        position=row.position,
        repository_name=row.repository_name,
        digest=row.digest,
        tag=row.tag or None,
        status=row.status,
        failure_code=row.failure_code,
    )


def _of(registry_id: int, backfill_id: str) -> Any:
    return (replication_backfills.c.registry_id == registry_id) & (
        replication_backfills.c.id == backfill_id
    )


class BackfillStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def start(
        self, backfill_id: str, registry_id: int, destination: tuple[str, str]
    ) -> Backfill:
        """A new backfill, PREPARING; BackfillInProgress while one to the same region is under
        way, TooManyBackfills past ECR's quota (decided one start at a time)."""
        account, region = destination

        def work(connection: Connection) -> Backfill:
            serialise(connection, BACKFILL_LOCK)
            under_way = list(
                connection.execute(
                    select(replication_backfills.c.destination_region).where(
                        (replication_backfills.c.registry_id == registry_id)
                        & replication_backfills.c.status.in_(UNDER_WAY)
                    )
                ).scalars()
            )
            if region in under_way:
                raise BackfillInProgress(
                    f"A replication backfill to region {region} is already in progress"
                )
            if len(under_way) >= MAX_UNDER_WAY:
                raise TooManyBackfills(
                    f"A registry can have at most {MAX_UNDER_WAY} replication backfills in "
                    "progress at once"
                )
            connection.execute(
                insert(replication_backfills).values(
                    id=backfill_id,
                    registry_id=registry_id,
                    destination_account=account,
                    destination_region=region,
                    status=PREPARING,
                    completed_count=0,
                    failed_count=0,
                    failure_codes_json="[]",
                    started_at=utcnow(),
                )
            )
            row = connection.execute(
                select(replication_backfills).where(_of(registry_id, backfill_id))
            ).one()
            return _backfill(row)

        return await self._database.write(work)

    async def get(self, registry_id: int, backfill_id: str) -> Backfill:
        query = select(replication_backfills).where(_of(registry_id, backfill_id))
        row = await self._database.read(lambda connection: connection.execute(query).first())
        if row is None:
            raise BackfillNotFound(
                f"The replication backfill with id '{backfill_id}' does not exist in the registry"
            )
        return _backfill(row)

    async def page(
        self, registry_id: int, after: tuple[datetime, str] | None, limit: int
    ) -> list[Backfill]:
        """The registry's backfills, newest first; those after `after` (started at, id)."""
        query = select(replication_backfills).where(
            replication_backfills.c.registry_id == registry_id
        )
        if after is not None:
            started, backfill_id = after
            query = query.where(
                (replication_backfills.c.started_at < started)
                | (
                    (replication_backfills.c.started_at == started)
                    & (replication_backfills.c.id < backfill_id)
                )
            )
        query = query.order_by(
            replication_backfills.c.started_at.desc(), replication_backfills.c.id.desc()
        ).limit(limit)
        return await self._database.read(
            lambda connection: [_backfill(row) for row in connection.execute(query)]
        )

    async def request_stop(self, registry_id: int, backfill_id: str) -> Backfill:
        """PREPARING or IN_PROGRESS becomes STOPPING; BackfillStatusInvalid otherwise."""

        def work(connection: Connection) -> Backfill:
            row = connection.execute(
                select(replication_backfills).where(_of(registry_id, backfill_id)).with_for_update()
            ).first()
            if row is None:
                raise BackfillNotFound(
                    f"The replication backfill with id '{backfill_id}' does not exist in the "
                    "registry"
                )
            if row.status not in (PREPARING, IN_PROGRESS):
                raise BackfillStatusInvalid(
                    f"The replication backfill with id '{backfill_id}' is {row.status} and "
                    "cannot be stopped"
                )
            connection.execute(
                update(replication_backfills)
                .where(_of(registry_id, backfill_id))
                .values(status=STOPPING)
            )
            found = connection.execute(
                select(replication_backfills).where(_of(registry_id, backfill_id))
            ).one()
            return _backfill(found)

        return await self._database.write(work)

    async def under_way(self) -> list[Backfill]:
        """Every registry's backfills that have not ended, oldest first."""
        query = (
            select(replication_backfills)
            .where(replication_backfills.c.status.in_(UNDER_WAY))
            .order_by(replication_backfills.c.started_at)
        )
        return await self._database.read(
            lambda connection: [_backfill(row) for row in connection.execute(query)]
        )

    async def set_results(
        self, backfill: Backfill, entries: Sequence[tuple[str, str, str | None]]
    ) -> bool:
        """List the backfill's results (repository, digest, tag) as PENDING and move it to
        IN_PROGRESS, replacing any an interrupted preparation left; False (nothing changed)
        when it is no longer PREPARING (stopped meanwhile)."""
        rows = [
            {
                "backfill_id": backfill.id,
                "position": position,
                "repository_name": name,
                "digest": digest,
                "tag": tag or "",
                "status": PENDING,
            }
            for position, (name, digest, tag) in enumerate(entries)
        ]
        mine = replication_backfills.c.id == backfill.id

        def work(connection: Connection) -> bool:
            moved = connection.execute(
                update(replication_backfills)
                .where(mine & (replication_backfills.c.status == PREPARING))
                .values(status=IN_PROGRESS, total_count=len(rows))
            ).rowcount
            if not moved:
                return False
            connection.execute(
                delete(replication_backfill_results).where(
                    replication_backfill_results.c.backfill_id == backfill.id
                )
            )
            for start in range(0, len(rows), 500):
                connection.execute(insert(replication_backfill_results), rows[start : start + 500])
            return True

        return await self._database.write(work)

    async def pending(self, backfill_id: str, limit: int) -> list[BackfillResult]:
        """Results not ended yet (PENDING or QUEUED), in order."""
        query = (
            select(replication_backfill_results)
            .where(
                (replication_backfill_results.c.backfill_id == backfill_id)
                & replication_backfill_results.c.status.in_(NOT_ENDED)
            )
            .order_by(replication_backfill_results.c.position)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [_result(row) for row in connection.execute(query)]
        )

    async def mark_queued(self, backfill_id: str, positions: Sequence[int]) -> bool:
        """Mark results QUEUED, only while the backfill is IN_PROGRESS (False: a stop came)."""
        statement = (
            update(replication_backfill_results)
            .where(
                (replication_backfill_results.c.backfill_id == backfill_id)
                & replication_backfill_results.c.position.in_(list(positions))
                & (replication_backfill_results.c.status == PENDING)
            )
            .values(status=QUEUED)
        )
        still = select(replication_backfills.c.status).where(
            replication_backfills.c.id == backfill_id
        )

        def work(connection: Connection) -> bool:
            # FOR UPDATE (PostgreSQL): a stop waits for this, or this sees it.
            if connection.execute(still.with_for_update()).scalar() != IN_PROGRESS:
                return False
            connection.execute(statement)
            return True

        return await self._database.write(work)

    async def record(
        self, backfill_id: str, positions: Sequence[int], failure_code: str | None
    ) -> None:
        """Results at `positions` done: COMPLETE, or FAILED with `failure_code`; the
        backfill's counts follow in the same transaction."""
        status = COMPLETE if failure_code is None else FAILED

        def work(connection: Connection) -> None:
            changed = connection.execute(
                update(replication_backfill_results)
                .where(
                    (replication_backfill_results.c.backfill_id == backfill_id)
                    & replication_backfill_results.c.position.in_(list(positions))
                    & replication_backfill_results.c.status.in_(NOT_ENDED)
                )
                .values(status=status, failure_code=failure_code)
            ).rowcount
            row = connection.execute(
                select(replication_backfills).where(replication_backfills.c.id == backfill_id)
            ).one()
            values: dict[str, Any] = {}
            if failure_code is None:
                values["completed_count"] = row.completed_count + changed
            else:
                values["failed_count"] = row.failed_count + changed
                codes = json.loads(row.failure_codes_json)
                if failure_code not in codes:
                    values["failure_codes_json"] = json.dumps([*codes, failure_code])
            connection.execute(
                update(replication_backfills)
                .where(replication_backfills.c.id == backfill_id)
                .values(**values)
            )

        await self._database.write(work)

    async def end(
        self,
        backfill: Backfill,
        status: str,
        failure_code: str | None = None,
        from_status: str | None = None,
    ) -> None:
        """End the backfill (only from `from_status` when given, so that a stop asked for
        meanwhile is not overwritten); results not ended go (a stopped backfill lists what it
        did)."""
        mine = replication_backfills.c.id == backfill.id
        current = (
            replication_backfills.c.status.in_(UNDER_WAY)
            if from_status is None
            else replication_backfills.c.status == from_status
        )

        def work(connection: Connection) -> None:
            ended = connection.execute(
                update(replication_backfills)
                .where(mine & current)
                .values(status=status, failure_code=failure_code, ended_at=utcnow())
            ).rowcount
            if not ended:
                return
            connection.execute(
                delete(replication_backfill_results).where(
                    (replication_backfill_results.c.backfill_id == backfill.id)
                    & replication_backfill_results.c.status.in_(NOT_ENDED)
                )
            )

        await self._database.write(work)

    async def results(
        self, backfill_id: str, status: str | None, after: int | None, limit: int
    ) -> list[BackfillResult]:
        """Ended results in order, of one status when given, after position `after`."""
        query = select(replication_backfill_results).where(
            (replication_backfill_results.c.backfill_id == backfill_id)
            & replication_backfill_results.c.status.not_in(NOT_ENDED)
        )
        if status is not None:
            query = query.where(replication_backfill_results.c.status == status)
        if after is not None:
            query = query.where(replication_backfill_results.c.position > after)
        query = query.order_by(replication_backfill_results.c.position).limit(limit)
        return await self._database.read(
            lambda connection: [_result(row) for row in connection.execute(query)]
        )

    async def drop_ended_before(self, cutoff: datetime) -> int:
        statement = delete(replication_backfills).where(
            replication_backfills.c.status.not_in(UNDER_WAY)
            & (replication_backfills.c.ended_at < cutoff)
        )
        return await self._database.write(
            lambda connection: int(connection.execute(statement).rowcount)
        )

    async def images_of(self, repository_id: int) -> list[tuple[str, str | None]]:
        """A repository's images and their tags, (digest, tag or None) in order: every image
        but untagged ones an index in the repository lists (they go with their index)."""
        image = manifests.alias("image")
        parent = manifests.alias("parent")
        listed = (
            select(manifest_children.c.manifest_id)
            .join(parent, parent.c.id == manifest_children.c.manifest_id)
            .where(
                (parent.c.repository_id == repository_id)
                & (manifest_children.c.child_digest == image.c.digest)
            )
        )
        query = (
            select(image.c.digest, tags.c.name)
            .select_from(image.outerjoin(tags, tags.c.manifest_id == image.c.id))
            .where(
                (image.c.repository_id == repository_id)
                & (tags.c.name.is_not(None) | ~listed.exists())
            )
            .order_by(image.c.digest, tags.c.name)
        )
        return await self._database.read(
            lambda connection: [(row[0], row[1]) for row in connection.execute(query)]
        )
