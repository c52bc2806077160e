"""Engines, transactions and migrations for the metadata store.

Stores hand `read()` and `write()` a plain function of a SQLAlchemy Connection; where it runs
depends on the database:

- SQLite (default): reads run inline on the event loop. In WAL mode a reader never waits for a
  lock, and an indexed point query costs ~0.1 ms there against ~1-2 ms of round trips through
  an async driver's thread. Writes run in a worker thread, one hop per transaction, beginning
  IMMEDIATE on one connection per process, so writers queue instead of failing on a lock
  upgrade; `busy_timeout` covers writers in other processes.
- PostgreSQL: the same functions run through asyncpg on the event loop (`run_sync`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from anyio import to_thread
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
Result = TypeVar("Result")
Work = Callable[[Connection], Result]


class Database:
    """The metadata store: `read(work)` and `write(work)` each run `work` in one transaction."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._sqlite_read: Engine | None = None
        self._sqlite_write: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        if self.is_sqlite:
            sync_url = url.replace("sqlite+aiosqlite:", "sqlite:")
            # A read is one statement, which SQLite runs as its own snapshot: no BEGIN needed.
            self._sqlite_read = _sqlite_engine(sync_url, begin=None, pool_size=4)
            self._sqlite_write = _sqlite_engine(sync_url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.dialect = "sqlite"
        else:
            connect_args: dict[str, Any] = {}
            if schema is not None:
                connect_args["server_settings"] = {"search_path": schema}
            self._async_engine = create_async_engine(
                url, pool_size=10, max_overflow=20, connect_args=connect_args
            )
            self.dialect = self._async_engine.dialect.name

    async def read(self, work: Work[Result]) -> Result:
        if self._sqlite_read is not None:
            with self._sqlite_read.connect() as connection:
                return work(connection)
        return await self._run_async(work)

    async def write(self, work: Work[Result]) -> Result:
        if self._sqlite_write is not None:
            return await to_thread.run_sync(_run_sync, self._sqlite_write, work)
        return await self._run_async(work)

    async def _run_async(self, work: Work[Result]) -> Result:
        if self._async_engine is None:
            raise RuntimeError("database is closed")
        async with self._async_engine.begin() as connection:
            return await connection.run_sync(work)

    async def migrate(self) -> None:
        """Bring the schema up to the newest migration; safe when several processes start."""

        def upgrade(connection: Connection) -> None:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(7411001)"))
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        await self.write(upgrade)

    async def close(self) -> None:
        for engine in (self._sqlite_read, self._sqlite_write):
            if engine is not None:
                engine.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()


def _run_sync(engine: Engine, work: Work[Result]) -> Result:
    with engine.begin() as connection:
        return work(connection)


def _sqlite_engine(url: str, begin: str | None, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0 if begin else 4,
        pool_timeout=60,
        # Connections move between the event loop and worker threads, one user at a time.
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    if begin is not None:
        statement = begin

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(statement)

    return engine
