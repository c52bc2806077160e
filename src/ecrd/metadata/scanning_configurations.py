"""Each registry's scanning configuration (scan type and rules), one JSON row per registry."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import registry_scanning_configurations
from ecrd.metadata.statements import upsert


class ScanningConfigurationStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, registry_id: int) -> dict[str, Any] | None:
        query = select(registry_scanning_configurations.c.configuration_json).where(
            registry_scanning_configurations.c.registry_id == registry_id
        )
        text = await self._database.read(lambda connection: connection.execute(query).scalar())
        return None if text is None else dict(json.loads(text))

    async def put(self, registry_id: int, configuration: dict[str, Any]) -> None:
        statement = upsert(
            self._database.dialect,
            registry_scanning_configurations,
            ["registry_id"],
            registry_id=registry_id,
            configuration_json=json.dumps(configuration),
            updated_at=utcnow(),
        )

        def work(connection: Connection) -> None:
            connection.execute(statement)

        await self._database.write(work)
