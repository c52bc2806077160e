"""Pull-through cache rules, kept per registry and keyed by their repository prefix; and when
each cached tag was last checked against its upstream."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import pull_through_cache_rules as rules
from ecrd.metadata.schema import pull_through_tags
from ecrd.metadata.statements import insert_ignoring_conflicts, serialise, upsert

# Serialises the count-then-insert of a registry's rules on PostgreSQL (advisory lock).
RULE_LOCK = 7411004  # beside statements.MIGRATION_LOCK and creation_templates.TEMPLATE_LOCK


@dataclass(frozen=True)
class PullThroughRule:
    registry_id: int
    # The cache's namespace without its slash (`docker-hub`), or ROOT.
    prefix: str
    # ECR's upstreamRegistry (`docker-hub`, `ecr`, ...) and the URL the rule names.
    upstream_registry: str
    upstream_url: str
    # The upstream namespace the cache's names map to, or ROOT (the names as they are).
    upstream_prefix: str
    credential_arn: str | None
    custom_role_arn: str | None
    created_at: datetime
    updated_at: datetime


def _rule(row: Any) -> PullThroughRule:
    return PullThroughRule(
        registry_id=row.registry_id,
        prefix=row.prefix,
        upstream_registry=row.upstream_registry,
        upstream_url=row.upstream_url,
        upstream_prefix=row.upstream_prefix,
        credential_arn=row.credential_arn,
        custom_role_arn=row.custom_role_arn,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class PullThroughRuleStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, rule: PullThroughRule, limit: int) -> bool:
        """Store a new rule; False when its prefix has one. LookupError when the registry has
        `limit` rules already."""
        statement = insert_ignoring_conflicts(
            self._database.dialect,
            rules,
            registry_id=rule.registry_id,
            prefix=rule.prefix,
            upstream_registry=rule.upstream_registry,
            upstream_url=rule.upstream_url,
            upstream_prefix=rule.upstream_prefix,
            credential_arn=rule.credential_arn,
            custom_role_arn=rule.custom_role_arn,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        ).returning(rules.c.prefix)

        def work(connection: Connection) -> bool:
            serialise(connection, RULE_LOCK)
            count = connection.execute(
                select(func.count()).where(rules.c.registry_id == rule.registry_id)
            ).scalar_one()
            if count >= limit:
                raise LookupError(limit)
            return connection.execute(statement).first() is not None

        return await self._database.write(work)

    async def update(
        self, registry_id: int, prefix: str, credential_arn: str | None, custom_role_arn: str | None
    ) -> PullThroughRule | None:
        """Set a rule's credential and role; None when the prefix has no rule."""
        named = (rules.c.registry_id == registry_id) & (rules.c.prefix == prefix)

        def work(connection: Connection) -> PullThroughRule | None:
            changed = connection.execute(
                update(rules)
                .where(named)
                .values(
                    credential_arn=credential_arn,
                    custom_role_arn=custom_role_arn,
                    updated_at=utcnow(),
                )
            ).rowcount
            if not changed:
                return None
            return _rule(connection.execute(select(rules).where(named)).one())

        return await self._database.write(work)

    async def delete(self, registry_id: int, prefix: str) -> PullThroughRule | None:
        """Delete a rule; return it, or None when the prefix had none."""
        named = (rules.c.registry_id == registry_id) & (rules.c.prefix == prefix)

        def work(connection: Connection) -> PullThroughRule | None:
            row = connection.execute(select(rules).where(named).with_for_update()).first()
            if row is None:
                return None
            connection.execute(delete(rules).where(named))
            return _rule(row)

        return await self._database.write(work)

    async def page(
        self, registry_id: int, prefixes: Sequence[str] | None, after: str | None, limit: int
    ) -> list[PullThroughRule]:
        """Rules in prefix order after `after` (only `prefixes`, when given)."""
        query = select(rules).where(rules.c.registry_id == registry_id)
        if prefixes is not None:
            query = query.where(rules.c.prefix.in_(prefixes))
        if after is not None:
            query = query.where(rules.c.prefix > after)
        query = query.order_by(rules.c.prefix).limit(limit)
        return await self._database.read(
            lambda connection: [_rule(row) for row in connection.execute(query)]
        )


class PullThroughTagStore:
    """When each tag of a cached repository was last checked against the upstream."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def checked_at(self, repository_id: int, tag: str) -> datetime | None:
        query = select(pull_through_tags.c.checked_at).where(
            (pull_through_tags.c.repository_id == repository_id) & (pull_through_tags.c.tag == tag)
        )

        def work(connection: Connection) -> datetime | None:
            moment = connection.execute(query).scalar()
            return None if moment is None else as_utc(moment)

        return await self._database.read(work)

    async def mark_checked(self, repository_id: int, tag: str, moment: datetime) -> None:
        statement = upsert(
            self._database.dialect,
            pull_through_tags,
            ["repository_id", "tag"],
            repository_id=repository_id,
            tag=tag,
            checked_at=moment,
        )
        # A repository deleted meanwhile has nothing to note.
        with contextlib.suppress(IntegrityError):
            await self._database.write(lambda connection: connection.execute(statement))
