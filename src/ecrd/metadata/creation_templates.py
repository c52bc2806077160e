"""Repository creation templates: kept per registry, keyed by prefix, their settings as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import repository_creation_templates as templates
from ecrd.metadata.statements import insert_ignoring_conflicts, serialise

# Serialises the count-then-insert of a registry's templates on PostgreSQL (advisory lock).
TEMPLATE_LOCK = 7411003  # beside statements.MIGRATION_LOCK and BOOTSTRAP_LOCK


@dataclass(frozen=True)
class TemplateRecord:
    prefix: str
    # The template's settings as ECR's API names them (see the schema).
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _record(row: Any) -> TemplateRecord:
    return TemplateRecord(
        prefix=row.prefix,
        settings=json.loads(row.template_json),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class CreationTemplateStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self, registry_id: int, prefix: str, settings: dict[str, Any], limit: int
    ) -> TemplateRecord | None:
        """Store a new template; None when the prefix has one. LookupError when the registry
        has `limit` templates already."""
        now = utcnow()
        statement = insert_ignoring_conflicts(
            self._database.dialect,
            templates,
            registry_id=registry_id,
            prefix=prefix,
            template_json=json.dumps(settings, sort_keys=True),
            created_at=now,
            updated_at=now,
        ).returning(templates.c.prefix)

        def work(connection: Connection) -> TemplateRecord | None:
            serialise(connection, TEMPLATE_LOCK)
            count = connection.execute(
                select(func.count()).where(templates.c.registry_id == registry_id)
            ).scalar_one()
            if count >= limit:
                raise LookupError(limit)
            if connection.execute(statement).first() is None:
                return None
            return TemplateRecord(prefix, settings, now, now)

        return await self._database.write(work)

    async def update(
        self, registry_id: int, prefix: str, settings: dict[str, Any]
    ) -> TemplateRecord | None:
        """Replace a template's settings; None when the prefix has no template."""
        now = utcnow()
        named = (templates.c.registry_id == registry_id) & (templates.c.prefix == prefix)

        def work(connection: Connection) -> TemplateRecord | None:
            changed = connection.execute(
                update(templates)
                .where(named)
                .values(template_json=json.dumps(settings, sort_keys=True), updated_at=now)
            ).rowcount
            if not changed:
                return None
            return _record(connection.execute(select(templates).where(named)).one())

        return await self._database.write(work)

    async def get(self, registry_id: int, prefix: str) -> TemplateRecord | None:
        query = select(templates).where(
            (templates.c.registry_id == registry_id) & (templates.c.prefix == prefix)
        )

        def work(connection: Connection) -> TemplateRecord | None:
            row = connection.execute(query).first()
            return None if row is None else _record(row)

        return await self._database.read(work)

    async def delete(self, registry_id: int, prefix: str) -> TemplateRecord | None:
        """Delete a template; return it, or None when the prefix had none."""
        named = (templates.c.registry_id == registry_id) & (templates.c.prefix == prefix)

        def work(connection: Connection) -> TemplateRecord | None:
            row = connection.execute(select(templates).where(named).with_for_update()).first()
            if row is None:
                return None
            connection.execute(delete(templates).where(named))
            return _record(row)

        return await self._database.write(work)

    async def page(
        self,
        registry_id: int,
        prefixes: Sequence[str] | None,
        after: str | None,
        limit: int,
    ) -> list[TemplateRecord]:
        """Templates in prefix order after `after` (only `prefixes`, when given)."""
        query = select(templates).where(templates.c.registry_id == registry_id)
        if prefixes is not None:
            query = query.where(templates.c.prefix.in_(prefixes))
        if after is not None:
            query = query.where(templates.c.prefix > after)
        query = query.order_by(templates.c.prefix).limit(limit)
        return await self._database.read(
            lambda connection: [_record(row) for row in connection.execute(query)]
        )

    async def candidates(self, registry_id: int, prefixes: Sequence[str]) -> list[TemplateRecord]:
        """The templates of those `prefixes` (a name's namespaces and ROOT)."""
        return await self.page(registry_id, prefixes, None, len(prefixes))
