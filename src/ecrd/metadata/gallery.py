"""What the public gallery lists: public repositories with their catalog data and last push."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc
from ecrd.metadata.schema import manifests, registries, repositories

# The gallery shows at most this many repositories (ordered by name) before searching.
MAX_LISTED = 1000


@dataclass(frozen=True)
class PublicRepository:
    alias: str
    name: str
    repository_id: int
    catalog_data: dict[str, Any]
    last_pushed_at: datetime | None

    @property
    def path(self) -> str:
        return f"{self.alias}/{self.name}"


class GalleryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def repositories(
        self, alias: str | None = None, name: str | None = None
    ) -> list[PublicRepository]:
        """Public repositories by alias and name (or one, when both are given)."""
        last_push = (
            select(func.max(manifests.c.pushed_at))
            .where(manifests.c.repository_id == repositories.c.id)
            .scalar_subquery()
        )
        query = (
            select(
                registries.c.alias,
                repositories.c.id,
                repositories.c.name,
                repositories.c.catalog_data_json,
                last_push.label("last_pushed_at"),
            )
            .select_from(repositories.join(registries))
            .where(registries.c.kind == "public")
            .order_by(registries.c.alias, repositories.c.name)
            .limit(MAX_LISTED)
        )
        if alias is not None:
            query = query.where(registries.c.alias == alias)
        if name is not None:
            query = query.where(repositories.c.name == name)

        def work(connection: Connection) -> list[PublicRepository]:
            return [
                PublicRepository(
                    alias=row.alias,
                    name=row.name,
                    repository_id=row.id,
                    catalog_data=json.loads(row.catalog_data_json or "{}"),
                    last_pushed_at=None
                    if row.last_pushed_at is None
                    else as_utc(row.last_pushed_at),
                )
                for row in connection.execute(query)
            ]

        return await self._database.read(work)
