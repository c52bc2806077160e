"""Pull-time update exclusions: the principals of a registry whose pulls leave an image's
pull time as it was."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from ecrd.errors import ExclusionAlreadyExists, TooManyExclusions
from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import pull_time_exclusions, registries
from ecrd.metadata.statements import insert_ignoring_conflicts


class PullTimeExclusionStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, registry_id: int, principal_arn: str, limit: int) -> datetime:
        """Exclude a principal; when it was excluded. ExclusionAlreadyExists when it is on the
        list, TooManyExclusions when `limit` principals are on it already."""

        def work(connection: Connection) -> datetime:
            # The registry's row, locked (FOR NO KEY UPDATE on PostgreSQL): two adds at once
            # must not both find room for the last place. SQLite's one writer needs none.
            connection.execute(
                select(registries.c.id)
                .where(registries.c.id == registry_id)
                .with_for_update(key_share=True)
            )
            present = connection.execute(
                select(pull_time_exclusions.c.principal_arn).where(
                    (pull_time_exclusions.c.registry_id == registry_id)
                    & (pull_time_exclusions.c.principal_arn == principal_arn)
                )
            ).first()
            if present is not None:
                raise ExclusionAlreadyExists(f"{principal_arn} is excluded already")
            count = connection.execute(
                select(func.count())
                .select_from(pull_time_exclusions)
                .where(pull_time_exclusions.c.registry_id == registry_id)
            ).scalar_one()
            if count >= limit:
                raise TooManyExclusions(f"the registry has {limit} exclusions already")
            created_at = utcnow()
            inserted = connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    pull_time_exclusions,
                    registry_id=registry_id,
                    principal_arn=principal_arn,
                    created_at=created_at,
                ).returning(pull_time_exclusions.c.created_at)
            ).first()
            if inserted is None:
                raise ExclusionAlreadyExists(f"{principal_arn} is excluded already")
            return created_at

        return await self._database.write(work)

    async def remove(self, registry_id: int, principal_arn: str) -> bool:
        """Take a principal off the list; whether it was on it."""
        statement = delete(pull_time_exclusions).where(
            (pull_time_exclusions.c.registry_id == registry_id)
            & (pull_time_exclusions.c.principal_arn == principal_arn)
        )
        return await self._database.write(
            lambda connection: bool(connection.execute(statement).rowcount)
        )

    async def page(self, registry_id: int, after: str | None, limit: int) -> list[str]:
        """Excluded principals' ARNs in byte order, those after `after`, at most `limit`."""
        arn = pull_time_exclusions.c.principal_arn
        query = select(arn).where(pull_time_exclusions.c.registry_id == registry_id)
        if after is not None:
            query = query.where(arn > after)
        query = query.order_by(arn).limit(limit)
        return await self._database.read(
            lambda connection: list(connection.execute(query).scalars())
        )

    async def all(self, registry_id: int, limit: int) -> frozenset[str]:
        """Every excluded principal's ARN (the list holds at most `limit`)."""
        query = (
            select(pull_time_exclusions.c.principal_arn)
            .where(pull_time_exclusions.c.registry_id == registry_id)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: frozenset(connection.execute(query).scalars())
        )
