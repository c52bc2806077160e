"""The metadata store under test: SQLite, and the PostgreSQL on 127.0.0.1:5432 when it answers.

Each PostgreSQL test gets a schema of its own, dropped afterwards. Under CI (`CI=true`) a
PostgreSQL that does not answer fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ecrd.metadata.database import Database

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _postgres_unreachable_reason() -> str | None:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None
    except Exception as error:  # any failure to connect means: skip, and say why
        return f"no PostgreSQL at 127.0.0.1:5432/test ({type(error).__name__}: {error})"
    finally:
        await engine.dispose()


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
    reason = asyncio.run(_postgres_unreachable_reason())
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    schema = f"ecrd_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_run_schema_statement(f'CREATE SCHEMA "{schema}"'))
    yield POSTGRES_URL, schema
    asyncio.run(_run_schema_statement(f'DROP SCHEMA "{schema}" CASCADE'))


def open_database(database_url: tuple[str, str | None]) -> Database:
    url, schema = database_url
    return Database(url, schema=schema)
