"""Registry-wide configuration documents kept as one JSON row per registry (the replication,
scanning and signing configurations): read, replaced, removed."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import repositories
from ecrd.metadata.statements import upsert


def document_of_repository(
    connection: Connection, repository_id: int, table: Table
) -> tuple[int, str, dict[str, Any]] | None:
    """(registry id, repository name, document) for a repository whose registry has a
    document in `table`, in one indexed join inside the caller's transaction; None when the
    registry has none (the common case: a push then costs this one statement)."""
    row = connection.execute(
        select(repositories.c.registry_id, repositories.c.name, table.c.configuration_json)
        .select_from(repositories.join(table, table.c.registry_id == repositories.c.registry_id))
        .where(repositories.c.id == repository_id)
    ).first()
    if row is None:
        return None
    return row.registry_id, row.name, dict(json.loads(row.configuration_json))


class RegistryDocumentStore:
    """The documents of one table with columns registry_id, configuration_json, updated_at."""

    def __init__(self, database: Database, table: Table) -> None:
        self._database = database
        self._table = table

    async def get(self, registry_id: int) -> dict[str, Any] | None:
        query = select(self._table.c.configuration_json).where(
            self._table.c.registry_id == registry_id
        )
        text = await self._database.read(lambda connection: connection.execute(query).scalar())
        return None if text is None else dict(json.loads(text))

    async def put(self, registry_id: int, document: dict[str, Any]) -> None:
        statement = upsert(
            self._database.dialect,
            self._table,
            ["registry_id"],
            registry_id=registry_id,
            configuration_json=json.dumps(document),
            updated_at=utcnow(),
        )

        def work(connection: Connection) -> None:
            connection.execute(statement)

        await self._database.write(work)

    async def remove(self, registry_id: int) -> dict[str, Any] | None:
        """Remove the registry's document; the one removed, or None when there was none."""
        mine = self._table.c.registry_id == registry_id

        def work(connection: Connection) -> dict[str, Any] | None:
            text = connection.execute(select(self._table.c.configuration_json).where(mine)).scalar()
            if text is None:
                return None
            connection.execute(delete(self._table).where(mine))
            return dict(json.loads(text))

        return await self._database.write(work)
