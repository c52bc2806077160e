"""Engines, transactions and migrations for the metadata store.

SQLite runs in WAL mode with a busy timeout; write transactions begin IMMEDIATE so that two
writers queue instead of failing on a lock upgrade, and one process funnels its writes through
one connection. PostgreSQL uses one pooled engine for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """The metadata store's connections: `read()` and `write()` each yield one transaction."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=8)
            self._write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
        else:
            connect_args: dict[str, Any] = {}
            if schema is not None:
                connect_args["server_settings"] = {"search_path": schema}
            engine = create_async_engine(
                url, pool_size=10, max_overflow=20, connect_args=connect_args
            )
            self._read_engine = self._write_engine = engine

    @property
    def dialect(self) -> str:
        return self._write_engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._read_engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_engine.begin() as connection:
            yield connection

    async def migrate(self) -> None:
        """Bring the schema up to the newest migration; safe when several processes start."""
        async with self._write_engine.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(text("SELECT pg_advisory_xact_lock(7411001)"))
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        await self._read_engine.dispose()
        if self._write_engine is not self._read_engine:
            await self._write_engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_engine(url: str, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine
