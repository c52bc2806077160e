"""Registries: one per (account id, region, kind)."""

from __future__ import annotations

from sqlalchemy import select

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
        where = (
            (registries.c.account_id == account_id)
            & (registries.c.region == region)
            & (registries.c.kind == kind)
        )
        async with self._database.read() as connection:
            row = (await connection.execute(select(registries.c.id).where(where))).first()
        if row is None:
            async with self._database.write() as connection:
                await connection.execute(
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
                row = (await connection.execute(select(registries.c.id).where(where))).one()
        registry = Registry(id=row.id, account_id=account_id, region=region, kind=kind)
        self._known[key] = registry
        return registry
