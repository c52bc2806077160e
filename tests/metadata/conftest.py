"""The metadata store under test: SQLite, and the PostgreSQL on 127.0.0.1:5432 when it answers.

Each PostgreSQL test gets a schema of its own, dropped afterwards. Under CI (`CI=true`) a
PostgreSQL that does not answer fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ecrd.metadata.database import Database
from tests.conftest import require_postgres

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _run_schema_statement(statement: str) -> None:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty, migrated-on-demand metadata store."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'metadata.db'}", None
        return
    require_postgres()
    schema = f"ecrd_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_run_schema_statement(f'CREATE SCHEMA "{schema}"'))
    yield POSTGRES_URL, schema
    asyncio.run(_run_schema_statement(f'DROP SCHEMA "{schema}" CASCADE'))


def open_database(database_url: tuple[str, str | None]) -> Database:
    url, schema = database_url
    return Database(url, schema=schema)
