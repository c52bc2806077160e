"""Registries: one per (account id, region, kind)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import UNSTORED_ID, Registry, Repository, utcnow
from ecrd.metadata.repositories import COLUMNS as REPOSITORY_COLUMNS
from ecrd.metadata.repositories import repository_record
from ecrd.metadata.schema import account_settings, registries, repositories
from ecrd.metadata.statements import insert_ignoring_conflicts

MISSING_ALIAS_SECONDS = 5.0
# The account setting that says which actions the registry policy governs.
POLICY_SCOPE_SETTING = "REGISTRY_POLICY_SCOPE"
_MAX_REMEMBERED_MISSES = 10_000


# The registry policy and its scope.
PolicyAndScope = tuple[str | None, str | None]

# The registry joined to its policy scope setting.
_WITH_SCOPE = registries.outerjoin(
    account_settings,
    (account_settings.c.registry_id == registries.c.id)
    & (account_settings.c.name == POLICY_SCOPE_SETTING),
)
# ... and to the repository named by the `name` parameter (NULLs when there is none), for
# statements `WHERE registries.id = ...`.
POLICY_SCOPE_AND_REPOSITORY = _WITH_SCOPE.outerjoin(
    repositories,
    (repositories.c.registry_id == registries.c.id) & (repositories.c.name == bindparam("name")),
)
POLICY_COLUMNS = (
    registries.c.policy_text.label("registry_policy_text"),
    account_settings.c.value.label("policy_scope"),
)
# Built once: every authorized data-plane request runs it.
_POLICY_SCOPE_AND_REPOSITORY = (
    select(*POLICY_COLUMNS, *REPOSITORY_COLUMNS)
    .select_from(POLICY_SCOPE_AND_REPOSITORY)
    .where(registries.c.id == bindparam("registry_id"))
)


def derived_alias(account_id: str) -> str:
    """A stable alias for an account's public registry, in ECR Public's form (a letter and
    seven more lower-case letters or digits, like the random default aliases AWS gives)."""
    digest = hashlib.sha256(f"ecrd-public-alias:{account_id}".encode()).hexdigest()
    return "e" + digest[:7]


class RegistryStore:
    def __init__(
        self, database: Database, default_alias: Callable[[str], str] | None = None
    ) -> None:
        self._database = database
        # Gives a new public registry its alias, from the account id.
        self._default_alias = default_alias or derived_alias
        self._by_alias: dict[str, Registry] = {}
        self._missing_alias: dict[str, float] = {}
        # Registries are never renumbered, so their ids can be remembered for the process.
        self._known: dict[tuple[str, str, str], Registry] = {}

    async def get(self, account_id: str, region: str, kind: str = "private") -> Registry:
        """The registry of (account, region, kind): the stored one, or, when nothing was ever
        stored in it, an unstored one (`store` makes its row). Only stored ones are
        remembered, so made-up account ids cost a read each and no memory."""
        key = (account_id, region, kind)
        known = self._known.get(key)
        if known is not None:
            return known
        row = await self._database.read(
            lambda connection: connection.execute(self._query(account_id, region, kind)).first()
        )
        if row is None:
            alias = self._default_alias(account_id) if kind == "public" else None
            return Registry(UNSTORED_ID, account_id, region, kind, alias)
        return self._remember(Registry(row.id, account_id, region, kind, row.alias))

    async def store(self, registry: Registry) -> Registry:
        """`registry` with its row, made now if it has none (call it only for an authorized
        write: this is the one place registries are created)."""
        if registry.is_stored:
            return registry
        query = self._query(registry.account_id, registry.region, registry.kind)

        def create(connection: Connection) -> Any:
            connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    registries,
                    account_id=registry.account_id,
                    region=registry.region,
                    kind=registry.kind,
                    alias=registry.alias,
                    settings_json="{}",
                    created_at=utcnow(),
                )
            )
            return connection.execute(query).one()

        row = await self._database.write(create)
        return self._remember(dataclasses.replace(registry, id=row.id, alias=row.alias))

    async def ensure(self, account_id: str, region: str, kind: str = "private") -> Registry:
        """The registry of (account, region, kind), stored now if it was not."""
        return await self.store(await self.get(account_id, region, kind))

    @staticmethod
    def _query(account_id: str, region: str, kind: str) -> Any:
        return select(registries.c.id, registries.c.alias).where(
            (registries.c.account_id == account_id)
            & (registries.c.region == region)
            & (registries.c.kind == kind)
        )

    def _remember(self, registry: Registry) -> Registry:
        if registry.alias is not None:
            self._missing_alias.pop(registry.alias, None)
            self._by_alias[registry.alias] = registry
        self._known[(registry.account_id, registry.region, registry.kind)] = registry
        return registry

    async def policy(self, registry_id: int) -> str | None:
        query = select(registries.c.policy_text).where(registries.c.id == registry_id)
        return await self._database.read(lambda connection: connection.execute(query).scalar())

    async def policy_and_scope(self, registry_id: int) -> PolicyAndScope:
        """The registry policy and its REGISTRY_POLICY_SCOPE account setting (None: never
        put), in one read: every authorization asks for both."""
        query = (
            select(registries.c.policy_text, account_settings.c.value)
            .select_from(_WITH_SCOPE)
            .where(registries.c.id == registry_id)
        )
        row = await self._database.read(lambda connection: connection.execute(query).first())
        return (None, None) if row is None else (row[0], row[1])

    async def policy_scope_and_repository(
        self, registry_id: int, name: str
    ) -> tuple[PolicyAndScope, Repository | None]:
        """The registry policy and its scope, and the repository `name` (None: none), in one
        read: what authorizing a request to a repository needs besides the caller."""
        parameters = {"registry_id": registry_id, "name": name}

        row = await self._database.read_first(_POLICY_SCOPE_AND_REPOSITORY, parameters)
        if row is None:  # a registry nothing was stored in yet
            return (None, None), None
        repository = None if row.id is None else repository_record(row)
        return (row.registry_policy_text, row.policy_scope), repository

    async def by_alias(self, alias: str) -> Registry | None:
        """The public registry with this alias, if there is one.

        Aliases never change, so a hit is remembered; a miss for a few seconds, because every
        private data-plane path is first tried as `<alias>/<name>` when both share a host.
        """
        known = self._by_alias.get(alias)
        if known is not None:
            return known
        if self._missing_alias.get(alias, 0.0) > time.monotonic():
            return None
        query = select(
            registries.c.id, registries.c.account_id, registries.c.region, registries.c.kind
        ).where((registries.c.alias == alias) & (registries.c.kind == "public"))
        row = await self._database.read(lambda connection: connection.execute(query).first())
        if row is None:
            if len(self._missing_alias) > _MAX_REMEMBERED_MISSES:
                self._missing_alias.clear()
            self._missing_alias[alias] = time.monotonic() + MISSING_ALIAS_SECONDS
            return None
        registry = Registry(
            id=row.id, account_id=row.account_id, region=row.region, kind=row.kind, alias=alias
        )
        self._by_alias[alias] = registry
        return registry

    async def settings(self, registry_id: int) -> dict[str, Any]:
        """Registry-wide configuration (JSON): ECR Public's catalog data, for one."""
        query = select(registries.c.settings_json).where(registries.c.id == registry_id)
        text = await self._database.read(lambda connection: connection.execute(query).scalar())
        return dict(json.loads(text or "{}"))

    async def set_settings(self, registry: Registry, values: dict[str, Any]) -> None:
        registry = await self.store(registry)
        statement = (
            update(registries)
            .where(registries.c.id == registry.id)
            .values(settings_json=json.dumps(values))
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def set_policy(self, registry: Registry, policy_text: str | None) -> None:
        if policy_text is None and not registry.is_stored:
            return  # nothing to remove, and nothing to store
        registry = await self.store(registry)
        statement = (
            update(registries).where(registries.c.id == registry.id).values(policy_text=policy_text)
        )
        await self._database.write(lambda connection: connection.execute(statement))
