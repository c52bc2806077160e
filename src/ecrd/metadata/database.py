"""Engines, transactions and migrations for the metadata store.

Stores hand `read()` and `write()` a plain function of a SQLAlchemy Connection; where it runs
depends on the database:

- SQLite (default): reads run inline on the event loop. In WAL mode a reader never waits for a
  lock, and an indexed point query costs ~0.1 ms there against ~1-2 ms of round trips through
  an async driver's thread. Writes run in a worker thread, one hop per transaction, beginning
  IMMEDIATE on the one connection of the process's writer thread (`sqlite_writer`), so writers
  queue instead of failing on a lock upgrade; `busy_timeout` covers writers in other processes.
- PostgreSQL: the same functions run through asyncpg on the event loop (`run_sync`).

URLs taken (`normalise_url`), anything else is refused before a connection is tried:

    sqlite:///PATH (also sqlite+pysqlite, sqlite+aiosqlite)     a file; never in memory
    postgresql://, postgres://, postgresql+asyncpg://            all mean asyncpg
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import Connection, Engine, Select, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ecrd.errors import RepositoryDeleted, StorageFull
from ecrd.metadata.direct_reads import DirectRead
from ecrd.metadata.sqlite_writer import SqliteWriter
from ecrd.metadata.statements import MIGRATION_LOCK, serialise

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration under migrations/versions (a test keeps the two the same).
HEAD_REVISION = "0010"
# asyncpg waits 60 s for a server by default; a start or a pool refill should fail sooner.
CONNECT_TIMEOUT_SECONDS = 5.0
# PostgreSQL connections of one process: at most 15 writing and 20 reading (a server's
# default max_connections of 100 takes two processes and the tools beside them), all kept
# open once made: an overflow connection is closed when it goes back, so under load every
# statement beyond the pool paid a connect (and its TLS attempt) and a close.
WRITE_POOL_SIZE, WRITE_POOL_OVERFLOW = 15, 0
READ_POOL_SIZE, READ_POOL_OVERFLOW = 20, 0
ACCEPTED_URLS = "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite")
_POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
Result = TypeVar("Result")
Work = Callable[[Connection], Result]


class UnsupportedDatabaseUrl(ValueError):
    """A metadata URL ecrd cannot use; the message is one line naming the reason."""


def normalise_url(url: str) -> str:
    """`url` in the form the engines take: `sqlite:///PATH` or `postgresql+asyncpg://...`."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise UnsupportedDatabaseUrl(f"not a database URL (ecrd takes {ACCEPTED_URLS})")
    if scheme.lower() in _POSTGRESQL_SCHEMES:
        return f"postgresql+asyncpg://{rest}"
    if scheme.lower() in _SQLITE_SCHEMES:
        path = rest.removeprefix("/").partition("?")[0]
        # In memory, the read and write engines would each see a database of their own.
        if not rest.startswith("/") or path in ("", ":memory:"):
            raise UnsupportedDatabaseUrl("an SQLite database must be a file: sqlite:///PATH")
        return f"sqlite:///{rest.removeprefix('/')}"
    raise UnsupportedDatabaseUrl(f"unsupported scheme {scheme!r} (ecrd takes {ACCEPTED_URLS})")


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (relative to the working folder when relative), else None."""
    normalised = normalise_url(url)
    if not normalised.startswith("sqlite:"):
        return None
    return Path(normalised.removeprefix("sqlite:///").partition("?")[0])


def printable_url(url: str) -> str:
    """`url` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.partition("://")[0] + "://..."


class Database:
    """The metadata store: `read(work)` and `write(work)` each run `work` in one transaction."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        url = normalise_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._sqlite_read: Engine | None = None
        self._sqlite_write: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._async_reads: AsyncEngine | None = None
        self._sqlite_writer: SqliteWriter | None = None
        # The direct reads' one connection, and the thread it belongs to (see read_first).
        self._direct_connection: Any = None
        self._direct_thread: int | None = None
        self._direct_reads: dict[int, tuple[Select[Any], DirectRead]] = {}
        if self.is_sqlite:
            # A read is one statement, which SQLite runs as its own snapshot: no BEGIN needed.
            self._sqlite_read = _sqlite_engine(url, begin=None, pool_size=4)
            self._sqlite_write = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self._sqlite_writer = SqliteWriter()
            self.dialect = "sqlite"
        else:
            connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
            if schema is not None:
                connect_args["server_settings"] = {"search_path": schema}
            self._async_engine = create_async_engine(
                url,
                # Statements carry secrets (access keys, signing keys): errors must not show
                # their parameters in logs or job records.
                hide_parameters=True,
                pool_size=WRITE_POOL_SIZE,
                max_overflow=WRITE_POOL_OVERFLOW,
                connect_args=connect_args,
            )
            # Reads have connections of their own, in autocommit: under READ COMMITTED every
            # statement sees a snapshot of its own inside a transaction too, so BEGIN and
            # COMMIT give a read nothing but round trips, and a connection with no transaction
            # needs no rollback when it goes back to the pool. A read costs half the CPU.
            self._async_reads = create_async_engine(
                url,
                hide_parameters=True,
                pool_size=READ_POOL_SIZE,
                max_overflow=READ_POOL_OVERFLOW,
                connect_args=connect_args,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
            )
            self.dialect = self._async_engine.dialect.name

    async def read(self, work: Work[Result]) -> Result:
        if self._sqlite_read is not None:
            with self._sqlite_read.connect() as connection:
                return work(connection)
        if self._async_reads is None:
            raise RuntimeError("database is closed")
        async with self._async_reads.connect() as connection:
            return await connection.run_sync(work)

    async def read_first(self, statement: Select[Any], parameters: Mapping[str, Any]) -> Any:
        """The first row of `statement` (a module-level constant, built once), or None: a
        `read` for the hottest point reads. On SQLite it runs as a DirectRead, on a connection
        kept for the thread that first asked (the event loop's); any other thread, and
        PostgreSQL, read through SQLAlchemy as `read` does."""
        if self._sqlite_read is not None:
            thread = threading.get_ident()
            if self._direct_thread is None:
                self._direct_thread = thread
                self._direct_connection = self._sqlite_read.raw_connection()
            if thread == self._direct_thread:
                return self._direct_read(statement).first(
                    self._direct_connection.driver_connection, parameters
                )
        return await self.read(lambda connection: connection.execute(statement, parameters).first())

    def _direct_read(self, statement: Select[Any]) -> DirectRead:
        known = self._direct_reads.get(id(statement))
        if known is None:
            assert self._sqlite_read is not None
            # The statement is kept with it, so that its id is never another's.
            known = (statement, DirectRead(statement, self._sqlite_read.dialect))
            self._direct_reads[id(statement)] = known
        return known[1]

    async def write(self, work: Work[Result]) -> Result:
        """Run `work` in one write transaction. A row it references that another transaction
        deleted (a repository, with everything in it) is RepositoryDeleted, not a crash."""
        try:
            if self._sqlite_write is not None and self._sqlite_writer is not None:
                engine = self._sqlite_write
                return await self._sqlite_writer.run(lambda: _run_sync(engine, work))
            return await self._run_async(work)
        except IntegrityError as error:
            if _is_foreign_key_violation(error):
                raise RepositoryDeleted() from None
            raise
        except OperationalError as error:
            if getattr(error.orig, "sqlite_errorname", None) == "SQLITE_FULL":
                raise StorageFull("insufficient storage for metadata: the disk is full") from None
            raise

    async def _run_async(self, work: Work[Result]) -> Result:
        if self._async_engine is None:
            raise RuntimeError("database is closed")
        async with self._async_engine.begin() as connection:
            return await connection.run_sync(work)

    async def ping(self) -> None:
        """Connect and run one trivial query: raises what the driver raises when it cannot."""
        await self.read(lambda connection: connection.execute(text("SELECT 1")).scalar())

    async def migrate(self) -> None:
        """Bring the schema up to the newest migration; safe when several processes start.

        A store already at HEAD_REVISION is left alone without loading Alembic (which brings
        Mako and Pygments: a third of a second on every start and every `ecrd keys`)."""
        if await self.revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        def upgrade(connection: Connection) -> None:
            serialise(connection, MIGRATION_LOCK)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        await self.write(upgrade)

    async def revision(self) -> str | None:
        """The migration the store is at; None for a store never migrated."""

        def current(connection: Connection) -> str | None:
            if not inspect(connection).has_table("alembic_version"):
                return None
            value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if value is None else str(value)

        return await self.read(current)

    async def close(self) -> None:
        if self._direct_connection is not None:
            self._direct_connection.close()
            self._direct_connection = None
        if self._sqlite_writer is not None:
            await to_thread.run_sync(self._sqlite_writer.close)
        for engine in (self._sqlite_read, self._sqlite_write):
            if engine is not None:
                engine.dispose()
        for async_engine in (self._async_engine, self._async_reads):
            if async_engine is not None:
                await async_engine.dispose()


def _is_foreign_key_violation(error: IntegrityError) -> bool:
    driver_error = error.orig
    return (
        getattr(driver_error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_FOREIGNKEY"
        or getattr(driver_error, "sqlstate", None) == "23503"
    )


def _run_sync(engine: Engine, work: Work[Result]) -> Result:
    with engine.begin() as connection:
        return work(connection)


def _sqlite_engine(url: str, begin: str | None, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        hide_parameters=True,  # statements carry secrets: errors must not show them
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
