"""JobStore, the job runner's SQL, on SQLite and PostgreSQL: schedule rows, taking and letting go
of a lease, the record of runs and what `ecrd jobs list` reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from ecrd.metadata.database import Database
from ecrd.metadata.jobs import (
    ABANDONED_ERROR,
    FAILED,
    MAX_ERROR_CHARS,
    RUNNING,
    SUCCEEDED,
    JobStore,
)
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import job_runs, job_schedules
from tests.jobs.conftest import Databases, run_scenario

pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass

JOB = "sweep"
ME = "host-a:1:aaaa"
OTHER = "host-b:2:bbbb"
LEASE = timedelta(minutes=10)
INTERVAL = timedelta(hours=1)


async def schedule_row(database: Database, name: str = JOB) -> Any:
    query = select(job_schedules).where(job_schedules.c.name == name)
    return await database.read(lambda connection: connection.execute(query).one())


async def due_job(store: JobStore, name: str = JOB) -> datetime:
    """A job first due a second ago; returns now."""
    now = utcnow()
    await store.ensure({name: now - timedelta(seconds=1)}, {})
    return now


def test_ensure_keeps_the_row_the_first_process_made(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        first = utcnow() + timedelta(seconds=30)
        await store.ensure({JOB: first}, {})
        # A second process starting later picks another first run: the row stays as it was.
        await store.ensure({JOB: first + timedelta(seconds=20)}, {JOB: first + INTERVAL})
        [schedule] = await store.schedules()
        assert schedule.name == JOB
        assert schedule.next_run_at == first
        assert schedule.lease_holder is None and schedule.lease_until is None

    run_scenario(database_url, scenario)


def test_ensure_brings_a_run_due_too_late_forward(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        # A row made when the interval was a day; the job now runs hourly.
        await store.ensure({JOB: now + timedelta(days=1)}, {})
        await store.ensure({JOB: now}, {JOB: now + INTERVAL})
        [schedule] = await store.schedules()
        assert schedule.next_run_at == now + INTERVAL

    run_scenario(database_url, scenario)


def test_a_scheduled_take_runs_a_due_job_once(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = await due_job(store)
        next_run_at = now + INTERVAL

        claim = await store.take(JOB, ME, "schedule", now, now + LEASE, next_run_at)
        again = await store.take(JOB, OTHER, "schedule", now, now + LEASE, next_run_at)

        assert claim.run_id is not None
        assert again.run_id is None  # the tick is taken: not due any more, and leased
        [schedule] = await store.schedules()
        assert (schedule.next_run_at, schedule.lease_holder) == (next_run_at, ME)
        assert schedule.lease_until == now + LEASE
        [run] = await store.runs(JOB)
        assert (run.id, run.trigger, run.holder, run.outcome) == (
            claim.run_id,
            "schedule",
            ME,
            RUNNING,
        )
        assert run.started_at == now and run.finished_at is None

    run_scenario(database_url, scenario)


def test_a_scheduled_take_waits_for_the_next_run(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        await store.ensure({JOB: now + timedelta(seconds=5)}, {})

        claim = await store.take(JOB, ME, "schedule", now, now + LEASE, now + INTERVAL)

        assert claim.run_id is None
        assert await store.runs(JOB) == []
        assert (await schedule_row(database)).lease_holder is None

    run_scenario(database_url, scenario)


def test_a_scheduled_take_leaves_a_job_that_is_held(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = await due_job(store)
        # Due, but another process runs it now (on demand, or a run longer than its interval).
        theirs = await store.take(JOB, OTHER, "command", now, now + LEASE)
        assert theirs.run_id is not None

        mine = await store.take(JOB, ME, "schedule", now, now + LEASE, now + INTERVAL)

        assert mine.run_id is None
        [schedule] = await store.schedules()
        assert (schedule.lease_holder, schedule.next_run_at) == (OTHER, now - timedelta(seconds=1))

    run_scenario(database_url, scenario)


def test_a_lease_that_ran_out_is_taken_and_its_run_marked_abandoned(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        long_ago = utcnow() - timedelta(minutes=30)
        await store.ensure({JOB: long_ago}, {})
        # A holder took the job 30 minutes ago with a 10-minute lease, then died.
        dead = await store.take(JOB, OTHER, "schedule", long_ago, long_ago + LEASE, long_ago)
        now = utcnow()

        claim = await store.take(JOB, ME, "schedule", now, now + LEASE, now + INTERVAL)

        assert claim.run_id is not None
        newest, abandoned = await store.runs(JOB)
        assert (newest.id, newest.holder, newest.outcome) == (claim.run_id, ME, RUNNING)
        assert (abandoned.id, abandoned.holder, abandoned.outcome) == (dead.run_id, OTHER, FAILED)
        assert abandoned.error == ABANDONED_ERROR and abandoned.finished_at == now

    run_scenario(database_url, scenario)


def test_a_take_on_demand_ignores_the_schedule_but_not_a_lease(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        next_run_at = now + INTERVAL
        await store.ensure({JOB: next_run_at}, {})

        mine = await store.take(JOB, ME, "command", now, now + LEASE)
        theirs = await store.take(JOB, OTHER, "command", now, now + LEASE)

        assert mine.run_id is not None
        assert (theirs.run_id, theirs.lease_holder, theirs.lease_until) == (None, ME, now + LEASE)
        [schedule] = await store.schedules()
        assert schedule.next_run_at == next_run_at  # a run on demand leaves the schedule be
        [run] = await store.runs(JOB)
        assert run.trigger == "command"

    run_scenario(database_url, scenario)


def test_finish_records_the_end_and_lets_go_of_the_lease(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = await due_job(store)
        claim = await store.take(JOB, ME, "schedule", now, now + LEASE, now + INTERVAL)
        assert claim.run_id is not None
        finished_at = now + timedelta(seconds=2)

        await store.finish(
            claim.run_id, JOB, ME, now + LEASE, finished_at, FAILED, {"removed": 2}, "x" * 5000
        )

        [run] = await store.runs(JOB)
        assert (run.outcome, run.finished_at, run.counts) == (FAILED, finished_at, {"removed": 2})
        assert run.error is not None and len(run.error) == MAX_ERROR_CHARS
        [schedule] = await store.schedules()
        assert schedule.lease_holder is None and schedule.lease_until is None

    run_scenario(database_url, scenario)


def test_a_finish_after_the_lease_was_taken_again_leaves_the_new_lease(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        long_ago = utcnow() - timedelta(minutes=30)
        await store.ensure({JOB: long_ago}, {})
        old = await store.take(JOB, ME, "schedule", long_ago, long_ago + LEASE, long_ago)
        assert old.run_id is not None
        now = utcnow()
        # The same holder takes the job again after its first lease ran out...
        new = await store.take(JOB, ME, "command", now, now + LEASE)
        assert new.run_id is not None

        # ...and the first run, cut off late, records its end.
        await store.finish(old.run_id, JOB, ME, long_ago + LEASE, now, FAILED, {}, "late")

        [schedule] = await store.schedules()
        assert (schedule.lease_holder, schedule.lease_until) == (ME, now + LEASE)

    run_scenario(database_url, scenario)


def test_finish_keeps_the_newest_runs(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        start = utcnow() - timedelta(hours=1)
        await store.ensure({JOB: start + INTERVAL}, {})
        run_ids = []
        for number in range(6):
            moment = start + timedelta(minutes=number)
            claim = await store.take(JOB, ME, "command", moment, moment + LEASE)
            assert claim.run_id is not None
            await store.finish(
                claim.run_id, JOB, ME, moment + LEASE, moment, SUCCEEDED, {"n": number}, None, 4
            )
            run_ids.append(claim.run_id)

        runs = await store.runs(JOB)
        assert [run.id for run in runs] == run_ids[::-1][:4]
        assert [run.counts["n"] for run in runs] == [5, 4, 3, 2]

    run_scenario(database_url, scenario)


def test_statuses_give_each_job_its_newest_run(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        await store.ensure({"alpha": now + INTERVAL, "beta": now + INTERVAL}, {})
        for minutes in (2, 1):  # the newer run first: "newest" is by start, not by id
            moment = now - timedelta(minutes=minutes)
            claim = await store.take("alpha", ME, "command", moment, moment + LEASE)
            assert claim.run_id is not None
            await store.finish(
                claim.run_id, "alpha", ME, moment + LEASE, moment, SUCCEEDED, {"m": minutes}, None
            )

        alpha, beta = await store.statuses()

        assert alpha.schedule.name == "alpha" and alpha.last_run is not None
        assert alpha.last_run.counts == {"m": 1}
        assert (beta.schedule.name, beta.last_run) == ("beta", None)

    run_scenario(database_url, scenario)


def test_of_many_processes_taking_one_tick_one_wins(database_url: tuple[str, str | None]) -> None:
    async def scenario(databases: Databases, database: Database) -> None:
        now = await due_job(JobStore(database))
        stores = [JobStore(databases.open()) for _ in range(6)]

        claims = await asyncio.gather(
            *(
                store.take(JOB, f"host:{number}:x", "schedule", now, now + LEASE, now + INTERVAL)
                for number, store in enumerate(stores)
            )
        )

        assert sum(claim.run_id is not None for claim in claims) == 1
        count = select(func.count()).select_from(job_runs)
        assert await database.read(lambda connection: connection.execute(count).scalar()) == 1

    run_scenario(database_url, scenario)


def test_a_take_waiting_on_another_transaction_sees_what_it_committed(
    database_url: tuple[str, str | None],
) -> None:
    """The claim of JobStore.take's docstring: a second UPDATE waits for the first transaction
    and tests its WHERE against what that one committed (READ COMMITTED on PostgreSQL, one
    writer at a time on SQLite)."""

    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = await due_job(store)
        # Another process's take, made in a transaction left open until told to commit.
        their_take = (
            update(job_schedules)
            .where((job_schedules.c.name == JOB) & (job_schedules.c.next_run_at <= now))
            .values(next_run_at=now + INTERVAL, lease_holder=OTHER, lease_until=now + LEASE)
        )
        async with open_transaction(database_url, their_take) as commit:
            mine = asyncio.create_task(
                store.take(JOB, ME, "schedule", now, now + LEASE, now + INTERVAL)
            )
            await asyncio.sleep(0.5)
            assert not mine.done()  # waiting for the other transaction
            await commit()
            claim = await asyncio.wait_for(mine, 30)

        assert claim.run_id is None
        assert (await schedule_row(database)).lease_holder == OTHER

    run_scenario(database_url, scenario)


@asynccontextmanager
async def open_transaction(
    database_url: tuple[str, str | None], statement: Any
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A transaction of another connection that has run `statement` and not committed yet;
    calling what this gives commits it."""
    url, schema = database_url
    if url.startswith("sqlite"):
        engine = create_engine(url.replace("+aiosqlite", ""))

        @event.listens_for(engine, "connect")
        def _leave_transactions_to_us(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None

        connection = engine.connect()
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        connection.execute(statement)

        async def commit_sqlite() -> None:
            connection.commit()

        try:
            yield commit_sqlite
        finally:
            connection.close()
            engine.dispose()
        return
    engine_async = create_async_engine(
        url, connect_args={"server_settings": {"search_path": schema}}
    )
    try:
        async with engine_async.connect() as connection_async:
            await connection_async.begin()
            await connection_async.execute(statement)
            yield connection_async.commit
    finally:
        await engine_async.dispose()
