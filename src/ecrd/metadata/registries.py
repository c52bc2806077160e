"""Registries: one per (account id, region, kind)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import Registry, utcnow
from ecrd.metadata.schema import registries
from ecrd.metadata.statements import insert_ignoring_conflicts


class RegistryStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Registries are never renumbered, so their ids can be remembered for the process.
        self._known: dict[tuple[str, str, str], Registry] = {}

    async def ensure(self, account_id: str, region: str, kind: str = "private") -> Registry:
        """Return the registry for (account, region, kind), creating it on first use."""
        key = (account_id, region, kind)
        known = self._known.get(key)
        if known is not None:
            return known
        query = select(registries.c.id).where(
            (registries.c.account_id == account_id)
            & (registries.c.region == region)
            & (registries.c.kind == kind)
        )

        def find(connection: Connection) -> int | None:
            return connection.execute(query).scalar()

        def create(connection: Connection) -> int:
            connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    registries,
                    account_id=account_id,
                    region=region,
                    kind=kind,
                    settings_json="{}",
                    created_at=utcnow(),
                )
            )
            return int(connection.execute(query).scalar_one())

        registry_id = await self._database.read(find)
        if registry_id is None:
            registry_id = await self._database.write(create)
        registry = Registry(id=registry_id, account_id=account_id, region=region, kind=kind)
        self._known[key] = registry
        return registry

    async def policy(self, registry_id: int) -> str | None:
        query = select(registries.c.policy_text).where(registries.c.id == registry_id)
        return await self._database.read(lambda connection: connection.execute(query).scalar())

    async def set_policy(self, registry_id: int, policy_text: str | None) -> None:
        statement = (
            update(registries).where(registries.c.id == registry_id).values(policy_text=policy_text)
        )
        await self._database.write(lambda connection: connection.execute(statement))
