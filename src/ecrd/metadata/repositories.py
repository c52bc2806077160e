"""Repositories of a registry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select

from ecrd.metadata.database import Database
from ecrd.metadata.records import Repository, as_utc, utcnow
from ecrd.metadata.schema import repositories
from ecrd.metadata.statements import insert_ignoring_conflicts, lexical

COLUMNS = (
    repositories.c.id,
    repositories.c.registry_id,
    repositories.c.name,
    repositories.c.arn,
    repositories.c.created_at,
    repositories.c.image_tag_mutability,
)


def repository_record(row: Any) -> Repository:
    return Repository(
        id=row.id,
        registry_id=row.registry_id,
        name=row.name,
        arn=row.arn,
        created_at=as_utc(row.created_at),
        image_tag_mutability=row.image_tag_mutability,
    )


# Built once: every data-plane request looks a repository up by name.
_BY_NAME = select(*COLUMNS).where(
    (repositories.c.registry_id == bindparam("registry_id"))
    & (repositories.c.name == bindparam("name"))
)


class RepositoryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, registry_id: int, name: str) -> Repository | None:
        def work(connection: Connection) -> Repository | None:
            row = connection.execute(_BY_NAME, {"registry_id": registry_id, "name": name}).first()
            return None if row is None else repository_record(row)

        return await self._database.read(work)

    async def ensure(self, registry_id: int, name: str, arn: str) -> Repository:
        """Return the repository, creating it with ECR's defaults when it does not exist."""
        existing = await self.get(registry_id, name)
        if existing is not None:
            return existing

        def create(connection: Connection) -> Repository:
            connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    repositories,
                    registry_id=registry_id,
                    name=name,
                    arn=arn,
                    created_at=utcnow(),
                    image_tag_mutability="MUTABLE",
                    tag_mutability_exclusions_json="[]",
                    scan_on_push=False,
                    encryption_type="AES256",
                )
            )
            row = connection.execute(_BY_NAME, {"registry_id": registry_id, "name": name}).one()
            return repository_record(row)

        return await self._database.write(create)

    async def list_names(self, registry_id: int, after: str | None, limit: int) -> list[str]:
        """Names in lexical order, those after `after`, at most `limit` of them."""
        name = lexical(self._database.dialect, repositories.c.name)
        query = select(repositories.c.name).where(repositories.c.registry_id == registry_id)
        if after is not None:
            query = query.where(name > after)
        query = query.order_by(name).limit(limit)

        def work(connection: Connection) -> list[str]:
            return list(connection.execute(query).scalars())

        return await self._database.read(work)
