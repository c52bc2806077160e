"""The SQLite writer thread: one write at a time, in order, to the end even when its caller
is cancelled; and the store's writes through it."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Connection, text

from ecrd.metadata.database import Database
from ecrd.metadata.sqlite_writer import SqliteWriter


def test_writes_run_one_at_a_time_in_the_order_they_came() -> None:
    async def main() -> list[int]:
        writer = SqliteWriter()
        done: list[int] = []
        running = 0
        overlapped = False

        def work(number: int) -> int:
            nonlocal running, overlapped
            running += 1
            overlapped = overlapped or running > 1
            time.sleep(0.001)
            done.append(number)
            running -= 1
            return number * 10

        try:
            results = await asyncio.gather(
                *(writer.run(functools.partial(work, n)) for n in range(50))
            )
        finally:
            writer.close()
        assert not overlapped
        assert results == [n * 10 for n in range(50)]
        return done

    assert asyncio.run(main()) == list(range(50))


def test_a_write_that_raises_gives_its_caller_the_error_and_the_next_write_still_runs() -> None:
    async def main() -> None:
        writer = SqliteWriter()

        def failing() -> None:
            raise ValueError("refused")

        try:
            with pytest.raises(ValueError, match="refused"):
                await writer.run(failing)
            assert await writer.run(lambda: threading.current_thread().name) == (
                "ecrd-sqlite-writer"
            )
        finally:
            writer.close()

    asyncio.run(main())


def test_a_cancelled_caller_waits_for_its_write_to_end() -> None:
    async def main() -> None:
        writer = SqliteWriter()
        started = threading.Event()
        finished = threading.Event()

        def slow() -> None:
            started.set()
            time.sleep(0.3)
            finished.set()

        try:
            began = time.monotonic()
            with anyio.move_on_after(0.05):
                await writer.run(slow)
            # the timeout fell while the write ran: the caller came back only once it ended
            assert started.is_set()
            assert finished.is_set()
            assert time.monotonic() - began >= 0.3
        finally:
            writer.close()

    asyncio.run(main())


def test_after_close_a_write_is_refused() -> None:
    async def main() -> None:
        writer = SqliteWriter()
        assert await writer.run(lambda: 1) == 1
        writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            await writer.run(lambda: 2)

    asyncio.run(main())


def test_sqlite_writes_are_committed_on_the_writer_thread(tmp_path: Path) -> None:
    async def main() -> None:
        database = Database(f"sqlite:///{tmp_path / 'metadata.db'}")
        try:
            await database.write(lambda c: c.execute(text("CREATE TABLE t (n INTEGER)")))

            def insert(number: int) -> Callable[[Connection], str]:
                def work(connection: Connection) -> str:
                    connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": number})
                    return threading.current_thread().name

                return work

            names = await asyncio.gather(*(database.write(insert(n)) for n in range(20)))
            assert set(names) == {"ecrd-sqlite-writer"}
            rows = await database.read(
                lambda c: [row.n for row in c.execute(text("SELECT n FROM t ORDER BY n"))]
            )
            assert rows == list(range(20))
        finally:
            await database.close()

    asyncio.run(main())
