"""Small statements the stores share: builders that differ between SQLite and PostgreSQL, and
checks several stores make."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ecrd.metadata.schema import repositories

_REPOSITORY_EXISTS = select(repositories.c.id).where(
    repositories.c.id == bindparam("repository_id")
)


def repository_exists(connection: Connection, repository_id: int) -> bool:
    """Whether the repository still has its row (another request may have deleted it)."""
    found = connection.execute(_REPOSITORY_EXISTS, {"repository_id": repository_id})
    return found.first() is not None


def insert_ignoring_conflicts(dialect: str, table: Table, **values: Any) -> Any:
    """INSERT that silently does nothing when the row's key already exists."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).values(**values).on_conflict_do_nothing()


def upsert(dialect: str, table: Table, keys: list[str], **values: Any) -> Any:
    """INSERT, or UPDATE the non-key columns when the row's key already exists."""
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    excluded = _excluded(dialect, table)
    updates = {name: excluded[name] for name in values if name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=updates)


@lru_cache(maxsize=64)
def _excluded(dialect: str, table: Table) -> Any:
    # The `excluded` pseudo-table's columns: an alias of the table, the same for every insert
    # into it, and costly to build (a proxy per column), so built once per table.
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).excluded


# Keys of the PostgreSQL advisory locks ecrd takes (any constants, unique within ecrd).
MIGRATION_LOCK = 7411001
BOOTSTRAP_LOCK = 7411002


def serialise(connection: Connection, lock: int) -> None:
    """Let one transaction at a time past this point, across processes, until it ends: for a
    check-then-insert that a unique key cannot guard. SQLite needs nothing (its writers begin
    IMMEDIATE, one at a time); PostgreSQL takes a transaction-scoped advisory lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
