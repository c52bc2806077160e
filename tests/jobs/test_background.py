"""BackgroundTasks: the fire-and-forget writes a server drains at shutdown."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ecrd.jobs.background import BackgroundTasks

pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass


def test_background_tasks_are_kept_until_they_end_and_drained() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()
        finished: list[int] = []

        async def write(number: int) -> None:
            await asyncio.sleep(0.1 * number)
            finished.append(number)

        for number in range(1, 4):
            tasks.spawn(write(number))
        assert len(tasks) == 3
        await asyncio.sleep(0.15)
        assert (finished, len(tasks)) == ([1], 2)  # an ended task is dropped

        await tasks.drain(timeout=5)

        assert (finished, len(tasks)) == ([1, 2, 3], 0)

    asyncio.run(scenario())


def test_a_failed_background_task_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()

        async def fail() -> None:
            raise OSError("store gone")

        tasks.spawn(fail())
        await tasks.drain(timeout=5)

    asyncio.run(scenario())
    [record] = [r for r in caplog.records if r.name == "ecrd.jobs"]
    assert record.levelno == logging.WARNING and "failed" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "store gone"


def test_background_tasks_past_the_limit_are_dropped() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks(limit=2)
        ran: list[int] = []

        async def write(number: int) -> None:
            ran.append(number)
            await asyncio.sleep(0.1)

        for number in range(3):
            tasks.spawn(write(number))
        assert len(tasks) == 2
        await tasks.drain(timeout=5)
        assert ran == [0, 1]

    asyncio.run(scenario())


def test_drain_cancels_what_outlives_its_timeout() -> None:
    async def scenario() -> None:
        tasks = BackgroundTasks()
        cancelled = asyncio.Event()

        async def hang() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        tasks.spawn(hang())
        started = time.monotonic()
        await tasks.drain(timeout=0.2)
        assert time.monotonic() - started < 2
        assert cancelled.is_set() and len(tasks) == 0

    asyncio.run(scenario())
