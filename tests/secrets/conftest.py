"""Helpers of the Secrets Manager tests: clients, names, and a write to a server's store (to age
a secret past its recovery window, or tamper with a stored value, as no API can)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from ecrd.metadata.database import Database
from tests.conftest import EcrdServer


def unique_name(prefix: str = "test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def metadata_write(server: EcrdServer, sql: str, **parameters: Any) -> int:
    """Run one writing SQL statement on the server's metadata store; the rows it changed."""
    url = server.database_url or f"sqlite:///{(server.data_dir / 'metadata.db').resolve()}"

    async def run() -> int:
        database = Database(url)
        try:
            return await database.write(
                lambda connection: connection.execute(text(sql), parameters).rowcount
            )
        finally:
            await database.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return int(thread.submit(asyncio.run, run()).result(timeout=60))


@pytest.fixture
def secrets(server: EcrdServer) -> Any:
    """boto3's Secrets Manager client on the session's server, as its root."""
    return server.ecr("secretsmanager")
