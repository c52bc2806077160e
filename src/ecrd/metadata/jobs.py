"""The job runner's rows: when each job is next due, who holds it, and a bounded record of runs.

    job_schedules  one row per job name
        next_run_at    when the next scheduled run is due; taking the run moves it forward
        lease_holder   the process running the job now ("host:pid:random"), else NULL
        lease_until    until when the lease holds; a holder that died lets go when it passes
    job_runs       one row per run, the newest KEEP_RUNS of each job kept
        trigger "schedule" or "command", outcome "running", "succeeded" or "failed",
        counts_json {"removed": 3}, error (bounded text)

A lease is taken by one conditional UPDATE (`take`) and let go by the holder that took it
(`finish`); nothing else writes the lease columns. Every time is a UTC time the caller
passes, so the store itself needs no clock and the runner's tests can reason about them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc
from ecrd.metadata.schema import job_runs, job_schedules
from ecrd.metadata.statements import insert_ignoring_conflicts

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SCHEDULE_TRIGGER = "schedule"
COMMAND_TRIGGER = "command"
# A run started by an event in the process (a push a replication rule covers).
EVENT_TRIGGER = "event"
# Runs kept per job: enough to see a pattern of failures, few enough to read in one query.
KEEP_RUNS = 100
# An error's text as stored: a traceback's last line, not a novel.
MAX_ERROR_CHARS = 2000
# Given to a run still "running" when another holder takes the job: its lease ran out, so
# its process stopped (or hung past the lease) before it could record the end.
ABANDONED_ERROR = "abandoned: the lease ran out before its holder recorded the end"


@dataclass(frozen=True)
class JobSchedule:
    name: str
    next_run_at: datetime
    lease_holder: str | None
    lease_until: datetime | None

    def leased_at(self, moment: datetime) -> bool:
        """Whether a lease holds at `moment` (the same test `take` makes)."""
        return self.lease_until is not None and self.lease_until >= moment


@dataclass(frozen=True)
class JobRunRecord:
    id: int
    name: str
    trigger: str
    holder: str
    started_at: datetime
    # None while the run is running (or when its holder died before recording the end).
    finished_at: datetime | None
    outcome: str
    counts: Mapping[str, int]
    error: str | None


@dataclass(frozen=True)
class JobStatus:
    """A job's schedule row and its newest run (None before its first)."""

    schedule: JobSchedule
    last_run: JobRunRecord | None


@dataclass(frozen=True)
class Claim:
    """What an attempt to take a job's lease found: the run recorded when taken; else, for an
    attempt that ignores the schedule, who holds the lease (as read just after)."""

    run_id: int | None
    lease_holder: str | None = None
    lease_until: datetime | None = None


def bounded_error(text: str) -> str:
    """An error's text as a run records it: at most MAX_ERROR_CHARS."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _schedule(row: Any) -> JobSchedule:
    return JobSchedule(
        name=row.name,
        next_run_at=as_utc(row.next_run_at),
        lease_holder=row.lease_holder,
        lease_until=None if row.lease_until is None else as_utc(row.lease_until),
    )


def _counts(counts_json: str) -> dict[str, int]:
    """The counts the runner wrote (it writes only str -> int objects)."""
    loaded = json.loads(counts_json or "{}")
    if not isinstance(loaded, dict):
        return {}
    return {str(key): value for key, value in loaded.items() if isinstance(value, int)}


def _run(row: Any) -> JobRunRecord:
    return JobRunRecord(
        id=row.run_id,
        name=row.run_name,
        trigger=row.trigger,
        holder=row.holder,
        started_at=as_utc(row.started_at),
        finished_at=None if row.finished_at is None else as_utc(row.finished_at),
        outcome=row.outcome,
        counts=_counts(row.counts_json),
        error=row.error,
    )


_RUN_COLUMNS = (
    job_runs.c.id.label("run_id"),
    job_runs.c.name.label("run_name"),
    job_runs.c.trigger,
    job_runs.c.holder,
    job_runs.c.started_at,
    job_runs.c.finished_at,
    job_runs.c.outcome,
    job_runs.c.counts_json,
    job_runs.c.error,
)
_NEWEST_FIRST = (job_runs.c.started_at.desc(), job_runs.c.id.desc())
# Each job's newest run, found through the (name, started_at) index.
_LAST_RUN_ID = (
    select(job_runs.c.id)
    .where(job_runs.c.name == job_schedules.c.name)
    .order_by(*_NEWEST_FIRST)
    .limit(1)
    .correlate(job_schedules)
    .scalar_subquery()
)
_STATUSES = (
    select(job_schedules, *_RUN_COLUMNS)
    .select_from(job_schedules.outerjoin(job_runs, job_runs.c.id == _LAST_RUN_ID))
    .order_by(job_schedules.c.name)
)


class JobStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def ensure(
        self, first_runs: Mapping[str, datetime], latest_next_runs: Mapping[str, datetime]
    ) -> None:
        """Give each job of `first_runs` a schedule row due then, leaving a row that exists
        alone (the first process to start decides); except that a row due later than the
        job's `latest_next_runs` time (its interval was shortened) is brought forward to it."""

        def work(connection: Connection) -> None:
            for name, first_run_at in first_runs.items():
                connection.execute(
                    insert_ignoring_conflicts(
                        self._database.dialect,
                        job_schedules,
                        name=name,
                        next_run_at=first_run_at,
                        lease_holder=None,
                        lease_until=None,
                    )
                )
            for name, latest in latest_next_runs.items():
                connection.execute(
                    update(job_schedules)
                    .where((job_schedules.c.name == name) & (job_schedules.c.next_run_at > latest))
                    .values(next_run_at=latest)
                )

        await self._database.write(work)

    async def schedules(self) -> list[JobSchedule]:
        """Every schedule row, by name (a plain read: what the poller looks at first)."""
        query = select(job_schedules).order_by(job_schedules.c.name)
        return await self._database.read(
            lambda connection: [_schedule(row) for row in connection.execute(query)]
        )

    async def take(
        self,
        name: str,
        holder: str,
        trigger: str,
        now: datetime,
        lease_until: datetime,
        next_run_at: datetime | None = None,
    ) -> Claim:
        """Take the job's lease for `holder` until `lease_until` and record a run "running";
        with `next_run_at`, only a run due at `now`, moving the schedule on to `next_run_at`
        (a scheduled run); without it, whenever no lease holds (a run on demand, which leaves
        the schedule as it is).

        Taking is ONE conditional UPDATE, and its row count says who won. That is this
        store's equivalent of SELECT ... FOR UPDATE SKIP LOCKED, correct on both databases:
        SQLite has one writer at a time (every write begins IMMEDIATE), so the WHERE is
        tested against the committed row. PostgreSQL under READ COMMITTED makes a second
        UPDATE of the same row wait for the first transaction to end, then tests its WHERE
        again against the row the first one committed: the schedule has moved on (or the
        lease holds), so it matches 0 rows and that process does not run the job."""
        free = job_schedules.c.lease_until.is_(None) | (job_schedules.c.lease_until < now)
        condition = (job_schedules.c.name == name) & free
        values: dict[str, Any] = {"lease_holder": holder, "lease_until": lease_until}
        if next_run_at is not None:
            condition &= job_schedules.c.next_run_at <= now
            values["next_run_at"] = next_run_at
        take_lease = update(job_schedules).where(condition).values(**values)
        # A run left "running" belongs to a holder whose lease ran out: whoever holds the
        # lease now is the only one that may be running the job.
        mark_abandoned = (
            update(job_runs)
            .where((job_runs.c.name == name) & (job_runs.c.outcome == RUNNING))
            .values(outcome=FAILED, finished_at=now, error=ABANDONED_ERROR)
        )
        record_run = insert(job_runs).values(
            name=name,
            trigger=trigger,
            holder=holder,
            started_at=now,
            finished_at=None,
            outcome=RUNNING,
            counts_json="{}",
            error=None,
        )
        lease_now = select(job_schedules.c.lease_holder, job_schedules.c.lease_until).where(
            job_schedules.c.name == name
        )

        def work(connection: Connection) -> Claim:
            if connection.execute(take_lease).rowcount != 1:
                if next_run_at is not None:
                    return Claim(run_id=None)  # not due, or another process took it first
                row = connection.execute(lease_now).first()
                if row is None or row.lease_until is None:
                    return Claim(run_id=None)
                return Claim(None, row.lease_holder, as_utc(row.lease_until))
            connection.execute(mark_abandoned)
            run_id = connection.execute(record_run.returning(job_runs.c.id)).scalar_one()
            return Claim(run_id=int(run_id))

        return await self._database.write(work)

    async def finish(
        self,
        run_id: int,
        name: str,
        holder: str,
        lease_until: datetime,
        finished_at: datetime,
        outcome: str,
        counts: Mapping[str, int],
        error: str | None,
        keep: int = KEEP_RUNS,
    ) -> None:
        """Record the run's end, let go of the lease `take` gave (`holder` and `lease_until`
        both: a lease that ran out and was taken again, even by the same holder, is not this
        run's to let go of) and delete the job's runs past the newest `keep`."""
        error = None if error is None else bounded_error(error)
        record_end = (
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(
                finished_at=finished_at,
                outcome=outcome,
                counts_json=json.dumps(dict(counts), sort_keys=True),
                error=error,
            )
        )
        release = (
            update(job_schedules)
            .where(
                (job_schedules.c.name == name)
                & (job_schedules.c.lease_holder == holder)
                & (job_schedules.c.lease_until == lease_until)
            )
            .values(lease_holder=None, lease_until=None)
        )
        newest = select(job_runs.c.id).where(job_runs.c.name == name)
        prune = delete(job_runs).where(
            (job_runs.c.name == name)
            & job_runs.c.id.not_in(newest.order_by(*_NEWEST_FIRST).limit(keep))
        )

        def work(connection: Connection) -> None:
            connection.execute(record_end)
            connection.execute(release)
            connection.execute(prune)

        await self._database.write(work)

    async def runs(self, name: str, limit: int = KEEP_RUNS) -> list[JobRunRecord]:
        """The job's runs, newest first, at most `limit`."""
        query = (
            select(*_RUN_COLUMNS)
            .where(job_runs.c.name == name)
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [_run(row) for row in connection.execute(query)]
        )

    async def statuses(self) -> list[JobStatus]:
        """Every job with a schedule row, by name, each with its newest run: one query."""

        def work(connection: Connection) -> list[JobStatus]:
            return [
                JobStatus(_schedule(row), None if row.run_id is None else _run(row))
                for row in connection.execute(_STATUSES)
            ]

        return await self._database.read(work)
