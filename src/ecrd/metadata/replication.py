"""Replication: each registry's rules, and per image and destination one row that is both the
work queued for the replication job and the status DescribeImageReplicationStatus shows.

A push, a delete or a tag removal that a rule covers queues its image in the same transaction
as the change (`queue_replication`), so a change is never stored without its replication nor
replicated without being stored. A row names its source by registry, repository name and
digest, not by row ids: the job reads the source as it is when it runs and makes the
destination match it, so several changes queued before it runs cost one copy, and a retry
after a failure halfway is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.registry_documents import RegistryDocumentStore, document_of_repository
from ecrd.metadata.schema import registries, replication_configurations, replications

PUSH = "push"
DELETE = "delete"
UNTAG = "untag"
IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
FAILED = "FAILED"


def destinations_for(configuration: Mapping[str, Any], name: str) -> dict[tuple[str, str], bool]:
    """The destinations (account, region) the rules send repository `name` to, each with
    whether deletes go there too (any rule covering the name and naming the destination with
    deleteReplication enabled). A rule without filters covers every repository; a
    PREFIX_MATCH filter covers the names that begin with it."""
    found: dict[tuple[str, str], bool] = {}
    for rule in configuration.get("rules") or ():
        filters = rule.get("repositoryFilters") or ()
        if filters and not any(name.startswith(item["filter"]) for item in filters):
            continue
        deletes = bool((rule.get("deleteReplication") or {}).get("enabled"))
        for destination in rule.get("destinations") or ():
            key = (destination["registryId"], destination["region"])
            found[key] = found.get(key, False) or deletes
    return found


def queue_replication(connection: Connection, repository_id: int, digest: str, change: str) -> bool:
    """Queue the image's replication to every destination the registry's rules give its
    repository, in the caller's transaction: a push to all of them, a delete or a tag
    removal (`change`) only where deletes are replicated. A delete also drops the image's
    status rows for the other destinations (there is no image left to describe). True when
    anything was queued."""
    row = document_of_repository(connection, repository_id, replication_configurations)
    if row is None:
        return False  # the registry replicates nothing
    registry_id, name, configuration = row
    destinations = destinations_for(configuration, name)
    if change != PUSH:
        destinations = {key: True for key, deletes in destinations.items() if deletes}
    if change == DELETE:
        connection.execute(
            delete(replications).where(
                _image(registry_id, name, digest)
                & tuple_(
                    replications.c.destination_account, replications.c.destination_region
                ).not_in(list(destinations) or [("", "")])
            )
        )
    now = utcnow()
    # In one order for every writer, so that two changes of one image never lock its rows
    # crosswise (PostgreSQL would end one of them with a deadlock).
    for (account, region), deletes in sorted(destinations.items()):
        _upsert(connection, registry_id, name, digest, account, region, deletes, now)
    return bool(destinations)


def _image(registry_id: int, name: str, digest: str) -> Any:
    return (
        (replications.c.registry_id == registry_id)
        & (replications.c.repository_name == name)
        & (replications.c.digest == digest)
    )


def _upsert(
    connection: Connection,
    registry_id: int,
    name: str,
    digest: str,
    account: str,
    region: str,
    deletes: bool,
    now: datetime,
) -> None:
    """Queue one image for one destination: a new row, or the existing one queued again with
    its generation bumped (a worker copying the older state then leaves it queued)."""
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = module.insert(replications).values(
        registry_id=registry_id,
        repository_name=name,
        digest=digest,
        destination_account=account,
        destination_region=region,
        status=IN_PROGRESS,
        failure_code=None,
        delete_replication=deletes,
        generation=1,
        attempts=0,
        queued_at=now,
        not_before=now,
        updated_at=now,
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[
                "registry_id",
                "repository_name",
                "digest",
                "destination_account",
                "destination_region",
            ],
            set_={
                "status": IN_PROGRESS,
                "failure_code": None,
                "delete_replication": deletes,
                "generation": replications.c.generation + 1,
                "attempts": 0,
                "queued_at": now,
                "not_before": now,
                "updated_at": now,
            },
        )
    )


@dataclass(frozen=True)
class Replication:
    """One image's replication to one destination."""

    id: int
    registry_id: int
    source_account: str
    source_region: str
    repository_name: str
    digest: str
    destination_account: str
    destination_region: str
    status: str
    failure_code: str | None
    delete_replication: bool
    generation: int
    attempts: int
    queued_at: datetime


_COLUMNS = (
    replications.c.id,
    replications.c.registry_id,
    registries.c.account_id.label("source_account"),
    registries.c.region.label("source_region"),
    replications.c.repository_name,
    replications.c.digest,
    replications.c.destination_account,
    replications.c.destination_region,
    replications.c.status,
    replications.c.failure_code,
    replications.c.delete_replication,
    replications.c.generation,
    replications.c.attempts,
    replications.c.queued_at,
)


_WITH_SOURCE = replications.join(registries, registries.c.id == replications.c.registry_id)


def _record(row: Any) -> Replication:
    values = dict(row._mapping)
    values["queued_at"] = as_utc(values["queued_at"])
    return Replication(**values)


class ReplicationStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._configurations = RegistryDocumentStore(database, replication_configurations)

    async def configuration(self, registry_id: int) -> dict[str, Any] | None:
        return await self._configurations.get(registry_id)

    async def set_configuration(self, registry_id: int, configuration: dict[str, Any]) -> None:
        """Replace the registry's rules; no rules removes the configuration."""
        if configuration.get("rules"):
            await self._configurations.put(registry_id, configuration)
        else:
            await self._configurations.remove(registry_id)

    async def queue(
        self,
        registry_id: int,
        repository_name: str,
        digest: str,
        destination: tuple[str, str],
        deletes: bool,
    ) -> None:
        """Queue one image for one destination outside a change (a backfill)."""
        account, region = destination

        def work(connection: Connection) -> None:
            _upsert(connection, registry_id, repository_name, digest, account, region, deletes,
                    utcnow())  # fmt: skip

        await self._database.write(work)

    async def due(self, now: datetime, limit: int) -> list[Replication]:
        """Queued replications whose time has come, the oldest change first (so a source's
        deletes reach a destination in the order they were made: an index before the images
        it lists)."""
        query = (
            select(*_COLUMNS)
            .select_from(_WITH_SOURCE)
            .where((replications.c.status == IN_PROGRESS) & (replications.c.not_before <= now))
            .order_by(replications.c.queued_at, replications.c.id)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [_record(row) for row in connection.execute(query)]
        )

    async def finish(self, replication: Replication, status: str, failure: str | None) -> bool:
        """Record the outcome, unless the image was queued again meanwhile (False: it stays
        queued for the newer change)."""
        return await self._update(
            replication, status=status, failure_code=failure, updated_at=utcnow()
        )

    async def retry(self, replication: Replication, at: datetime, failure: str) -> bool:
        """Leave it queued for another attempt at `at`, with the failure seen so far."""
        return await self._update(
            replication,
            attempts=replication.attempts + 1,
            not_before=at,
            failure_code=failure,
            updated_at=utcnow(),
        )

    async def drop(self, replication: Replication) -> bool:
        """Remove the row (its image is gone from the source), unless queued again meanwhile."""
        statement = delete(replications).where(
            (replications.c.id == replication.id)
            & (replications.c.generation == replication.generation)
        )
        return await self._database.write(
            lambda connection: bool(connection.execute(statement).rowcount)
        )

    async def _update(self, replication: Replication, **values: Any) -> bool:
        statement = (
            update(replications)
            .where(
                (replications.c.id == replication.id)
                & (replications.c.generation == replication.generation)
            )
            .values(**values)
        )
        return await self._database.write(
            lambda connection: bool(connection.execute(statement).rowcount)
        )

    async def of_image(
        self, registry_id: int, repository_name: str, digest: str
    ) -> list[Replication]:
        """The image's replications, by destination account and region."""
        query = (
            select(*_COLUMNS)
            .select_from(_WITH_SOURCE)
            .where(_image(registry_id, repository_name, digest))
            .order_by(replications.c.destination_account, replications.c.destination_region)
        )
        return await self._database.read(
            lambda connection: [_record(row) for row in connection.execute(query)]
        )

    async def outcomes(
        self, registry_id: int, destination: tuple[str, str], images: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, str | None]]:
        """The status and failure code of each (repository, digest) of `images` at one
        destination; an image with no row (gone from the source) is missing."""
        account, region = destination
        query = select(
            replications.c.repository_name,
            replications.c.digest,
            replications.c.status,
            replications.c.failure_code,
        ).where(
            (replications.c.registry_id == registry_id)
            & (replications.c.destination_account == account)
            & (replications.c.destination_region == region)
            & tuple_(replications.c.repository_name, replications.c.digest).in_(list(images))
        )

        def work(connection: Connection) -> dict[tuple[str, str], tuple[str, str | None]]:
            return {(r[0], r[1]): (r[2], r[3]) for r in connection.execute(query)}

        return await self._database.read(work) if images else {}

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many replications are queued, and the oldest change among them."""
        query = select(func.count(), func.min(replications.c.queued_at)).where(
            replications.c.status == IN_PROGRESS
        )

        def work(connection: Connection) -> tuple[int, datetime | None]:
            count, oldest = connection.execute(query).one()
            return int(count), None if oldest is None else as_utc(oldest)

        return await self._database.read(work)


def forget_repository(connection: Connection, registry_id: int, name: str) -> None:
    """Drop the replication rows of a repository being deleted, in its transaction (deleting a
    repository is not replicated; its images' statuses go with it)."""
    connection.execute(
        delete(replications).where(
            and_(replications.c.registry_id == registry_id, replications.c.repository_name == name)
        )
    )
