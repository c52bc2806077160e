"""ECR's account settings, one row per registry and setting name (none: the default)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import account_settings
from ecrd.metadata.statements import upsert


class AccountSettingStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, registry_id: int, name: str) -> str | None:
        """The stored value, or None when the setting was never put."""
        query = select(account_settings.c.value).where(
            (account_settings.c.registry_id == registry_id) & (account_settings.c.name == name)
        )
        return await self._database.read(lambda connection: connection.execute(query).scalar())

    async def put(self, registry_id: int, name: str, value: str) -> None:
        statement = upsert(
            self._database.dialect,
            account_settings,
            ["registry_id", "name"],
            registry_id=registry_id,
            name=name,
            value=value,
            updated_at=utcnow(),
        )

        def work(connection: Connection) -> None:
            connection.execute(statement)

        await self._database.write(work)
