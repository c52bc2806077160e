"""The job tests' metadata store: the `database_url` fixture of tests/metadata (SQLite, and the
PostgreSQL on 127.0.0.1:5432 in a schema of the test's own), and `Databases`, which opens that
store as several processes would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ecrd.metadata.database import Database
from tests.metadata.conftest import database_url, open_database

__all__ = ["database_url", "Databases", "run_scenario"]

# Every scenario ends well within this, or fails rather than hang the suite.
SCENARIO_TIMEOUT_SECONDS = 60


class Databases:
    """Database objects on one store: each has engines and connections of its own, so as far
    as the database can tell each is another process. Closed when the scenario ends."""

    def __init__(self, url: tuple[str, str | None]) -> None:
        self.url = url
        self._opened: list[Database] = []

    def open(self) -> Database:
        database = open_database(self.url)
        self._opened.append(database)
        return database

    async def close(self) -> None:
        for database in self._opened:
            await database.close()


def run_scenario(
    url: tuple[str, str | None], scenario: Callable[[Databases, Database], Awaitable[None]]
) -> None:
    """Run `scenario(databases, database)` on a migrated store, `database` the first opened."""

    async def main() -> None:
        databases = Databases(url)
        try:
            database = databases.open()
            await database.migrate()
            await asyncio.wait_for(scenario(databases, database), SCENARIO_TIMEOUT_SECONDS)
        finally:
            await databases.close()

    asyncio.run(main())
