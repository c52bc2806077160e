"""The job runner on SQLite and PostgreSQL: several runners (separate Database objects, and
separate OS processes) over one store share each job's ticks and never run it twice at once;
leases, failures, stopping, the record of runs. (BackgroundTasks and `ecrd jobs` have files
of their own.)

Jobs here are short (an interval of a fraction of a second to a second, polls every 0.1 s)
and every scenario runs a bounded few seconds. A job notes when each run began and ended, and
fails a run that begins while another is under way, so an overlap shows as a failed run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select, text, update

from ecrd.jobs.runner import (
    CANCELLED_AT_SHUTDOWN,
    Job,
    JobBusy,
    JobRunner,
    UnknownJob,
)
from ecrd.metadata.database import Database
from ecrd.metadata.jobs import ABANDONED_ERROR, KEEP_RUNS, JobRunRecord, JobStore
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import job_runs, job_schedules
from ecrd.observability.metrics import JobMetrics
from tests.conftest import clean_environment
from tests.jobs.conftest import Databases, run_scenario

pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass

JOB = "test_job"
POLL_SECONDS = 0.1
ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """A job's work: sleeps `seconds`, notes when it began and ended, and raises when it begins
    while a run is under way (so an overlap is recorded as a failed run)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.spans: list[tuple[float, float]] = []
        self.active = 0
        self.started = asyncio.Event()

    async def __call__(self) -> Mapping[str, int]:
        if self.active:
            raise AssertionError("a run began while another was under way")
        self.active += 1
        self.started.set()
        began = time.monotonic()
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.active -= 1
            self.spans.append((began, time.monotonic()))
        return {"run": len(self.spans)}


def assert_no_overlap(spans: list[tuple[float, float]]) -> None:
    ordered = sorted(spans)
    for (_, ended), (began, _) in zip(ordered, ordered[1:], strict=False):
        assert ended <= began, ordered


def assert_spaced(runs: list[JobRunRecord], interval: timedelta) -> None:
    """Each run began at least `interval` after the one before (the database's record)."""
    starts = sorted(run.started_at for run in runs)
    for earlier, later in zip(starts, starts[1:], strict=False):
        assert later - earlier >= interval, starts


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)


async def oldest_first(database: Database, name: str = JOB) -> list[JobRunRecord]:
    return (await JobStore(database).runs(name))[::-1]


async def set_schedule(database: Database, name: str = JOB, **values: Any) -> None:
    """Write the schedule row by hand, as a process (or a dead one) would have left it."""
    statement = update(job_schedules).where(job_schedules.c.name == name).values(**values)
    await database.write(lambda connection: connection.execute(statement))


async def schedule_row(database: Database, name: str = JOB) -> Any:
    query = select(job_schedules).where(job_schedules.c.name == name)
    return await database.read(lambda connection: connection.execute(query).one())


def runner(database: Database, job: Job, **options: Any) -> JobRunner:
    options.setdefault("poll_seconds", POLL_SECONDS)
    return JobRunner(database, [job], options.pop("metrics", None), **options)


# --- several runners over one store -------------------------------------------------------


def test_three_runners_run_a_job_once_per_interval(database_url: tuple[str, str | None]) -> None:
    interval = timedelta(seconds=1)

    async def scenario(databases: Databases, database: Database) -> None:
        work = Recorder(seconds=0.2)
        job = Job(JOB, interval, work)
        runners = [runner(databases.open(), job) for _ in range(3)]
        for each in runners:
            await each.start()
        await asyncio.sleep(4.5)
        for each in runners:
            await each.stop()

        runs = await oldest_first(database)
        assert 3 <= len(runs) <= 5
        assert len(runs) == len(work.spans)
        assert [run.counts for run in runs] == [{"run": n} for n in range(1, len(runs) + 1)]
        assert {(run.trigger, run.outcome) for run in runs} == {("schedule", "succeeded")}
        assert {run.holder for run in runs} <= {each.holder for each in runners}
        assert_spaced(runs, interval)
        assert_no_overlap(work.spans)

    run_scenario(database_url, scenario)


def test_a_job_longer_than_its_interval_never_overlaps_itself(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: Databases, database: Database) -> None:
        work = Recorder(seconds=0.5)
        job = Job(JOB, timedelta(seconds=0.2), work, jitter=0)
        runners = [runner(databases.open(), job) for _ in range(2)]
        for each in runners:
            await each.start()
        await asyncio.sleep(3)
        for each in runners:
            await each.stop()

        runs = await oldest_first(database)
        assert len(runs) >= 3  # back to back: the lease, not the interval, spaces them
        assert {run.outcome for run in runs} == {"succeeded"}
        assert_no_overlap(work.spans)

    run_scenario(database_url, scenario)


CHILD_JOB_SECONDS = 0.7
CHILD_INTERVAL = timedelta(seconds=0.3)
CHILD_RUN_SECONDS = 4.0
CHILD_COMMAND = (
    "import sys; from tests.jobs.test_runner import child_runner; child_runner(sys.argv[1])"
)


def child_runner(arguments_json: str) -> None:
    """A child process of test_runners_in_separate_processes_never_overlap: a JobRunner over
    the test's store, from a "go" file for the seconds it holds; each run of its job appends
    its (start, end) wall-clock times to a file of its own."""
    arguments = json.loads(arguments_json)
    asyncio.run(_child_runner(Path(arguments["folder"]), arguments["number"], arguments["url"]))


async def _child_runner(folder: Path, number: int, url: tuple[str, str | None]) -> None:
    database = Database(url[0], schema=url[1])
    spans = folder / f"spans-{number}"

    async def slow_job() -> Mapping[str, int]:
        began = time.time()
        await asyncio.sleep(CHILD_JOB_SECONDS)
        with spans.open("a") as file:
            file.write(f"{began} {time.time()}\n")
        return {"slept": 1}

    job_runner = runner(database, Job(JOB, CHILD_INTERVAL, slow_job, jitter=0))
    (folder / f"ready-{number}").write_text(job_runner.holder)
    go = folder / "go"
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go in 60 s")
        await asyncio.sleep(0.05)
    await job_runner.start()
    await asyncio.sleep(float(go.read_text()))
    await job_runner.stop()
    await database.close()


def test_runners_in_separate_processes_never_overlap(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        children = []
        try:
            for number in range(3):
                arguments = {"folder": str(tmp_path), "number": number, "url": database_url}
                log = (tmp_path / f"child-{number}.log").open("wb")
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-c", CHILD_COMMAND, json.dumps(arguments)],
                        cwd=ROOT,
                        env=clean_environment(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            ready = [tmp_path / f"ready-{number}" for number in range(3)]

            async def all_ready() -> bool:
                for child in children:
                    assert child.poll() is None, (tmp_path / "child-0.log").read_text()
                return all(path.exists() for path in ready)

            await eventually(all_ready, seconds=60)
            (tmp_path / "go.tmp").write_text(str(CHILD_RUN_SECONDS))
            (tmp_path / "go.tmp").rename(tmp_path / "go")
            for child in children:
                assert await asyncio.to_thread(child.wait, 60) == 0
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=15)

        spans = [
            (float(began), float(ended))
            for path in tmp_path.glob("spans-*")
            for began, ended in (line.split() for line in path.read_text().splitlines())
        ]
        runs = await oldest_first(database)
        assert len(runs) >= 3
        assert len(runs) == len(spans)
        assert {(run.trigger, run.outcome) for run in runs} == {("schedule", "succeeded")}
        assert {run.holder for run in runs} <= {path.read_text() for path in ready}
        assert_spaced(runs, CHILD_INTERVAL)
        assert_no_overlap(spans)

    run_scenario(database_url, scenario)


# --- leases ---------------------------------------------------------------------------------


def test_a_lease_that_holds_is_respected_and_one_that_ran_out_is_taken(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        # Given a job due now that another process took and holds for a minute more...
        await store.ensure({JOB: now - timedelta(seconds=1)}, {})
        dead = await store.take(
            JOB, "gone:1:0", "schedule", now, now + timedelta(minutes=1), now - timedelta(seconds=1)
        )
        work = Recorder()
        job_runner = runner(database, Job(JOB, timedelta(hours=1), work))
        await job_runner.start()

        await asyncio.sleep(1)  # ten polls
        assert work.spans == []

        # ...when that process's lease runs out (it died: the lease was never let go)...
        await set_schedule(database, lease_until=utcnow() - timedelta(seconds=1))

        async def ran() -> bool:
            return len(work.spans) == 1 and (await schedule_row(database)).lease_holder is None

        await eventually(ran)
        await job_runner.stop()

        # ...this runner takes the job, and the dead holder's run is marked abandoned.
        abandoned, mine = await oldest_first(database)
        assert (abandoned.id, abandoned.outcome, abandoned.error) == (
            dead.run_id,
            "failed",
            ABANDONED_ERROR,
        )
        assert (mine.holder, mine.outcome, mine.counts) == (
            job_runner.holder,
            "succeeded",
            {"run": 1},
        )

    run_scenario(database_url, scenario)


def test_run_now_while_another_process_holds_the_job_is_busy(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        work = Recorder()
        job_runner = runner(database, Job(JOB, timedelta(hours=1), work))
        store = JobStore(database)
        next_run_at = utcnow() + timedelta(minutes=30)
        lease_until = utcnow() + timedelta(minutes=5)
        await store.ensure({JOB: next_run_at}, {})
        await set_schedule(database, lease_holder="other:7:abc", lease_until=lease_until)

        with pytest.raises(JobBusy) as busy:
            await job_runner.run_now(JOB)

        assert (busy.value.holder, busy.value.lease_until) == ("other:7:abc", lease_until)
        assert "other:7:abc" in str(busy.value)
        assert work.spans == [] and await store.runs(JOB) == []

        # Once the other process lets go, a run now is recorded and leaves the schedule be.
        await set_schedule(database, lease_holder=None, lease_until=None)
        record = await job_runner.run_now(JOB)

        assert (record.trigger, record.outcome, record.counts) == (
            "command",
            "succeeded",
            {"run": 1},
        )
        [stored] = await store.runs(JOB)
        assert stored == record
        row = await schedule_row(database)
        assert (row.lease_holder, row.lease_until) == (None, None)
        [schedule] = await store.schedules()
        assert schedule.next_run_at == next_run_at

    run_scenario(database_url, scenario)


def test_run_now_of_an_unknown_job_names_the_jobs(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        jobs = [Job(name, timedelta(hours=1), Recorder()) for name in ("beta", "alpha")]
        job_runner = JobRunner(database, jobs, None)

        with pytest.raises(UnknownJob) as unknown:
            await job_runner.run_now("gamma")

        assert isinstance(unknown.value, KeyError)
        assert unknown.value.known == ("alpha", "beta")
        assert str(unknown.value) == "no job named 'gamma' (jobs: alpha, beta)"

    run_scenario(database_url, scenario)


def test_a_run_past_its_lease_is_cut_off(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        job = Job(JOB, timedelta(hours=1), Recorder(seconds=30), lease=timedelta(seconds=0.3))
        started = time.monotonic()

        record = await runner(database, job).run_now(JOB)

        assert time.monotonic() - started < 5
        assert record.outcome == "failed"
        assert record.error == "LeaseRanOut: ran past its lease of 0.3 s and was cut off"
        [stored] = await JobStore(database).runs(JOB)
        assert (stored.outcome, stored.error) == ("failed", record.error)
        assert (await schedule_row(database)).lease_holder is None

    run_scenario(database_url, scenario)


# --- failures, stopping, the record ---------------------------------------------------------


def test_a_failing_job_is_recorded_and_the_schedule_goes_on(
    database_url: tuple[str, str | None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ecrd.jobs")

    async def scenario(_: Databases, database: Database) -> None:
        results: list[Any] = [RuntimeError("disk on fire"), {"removed": "three"}]

        async def flaky() -> Mapping[str, int]:
            if results:
                result = results.pop(0)
                if isinstance(result, Exception):
                    raise result
                return result  # type: ignore[no-any-return]
            return {"removed": 3}

        registry = CollectorRegistry()
        metrics = JobMetrics(registry, [JOB])
        job = Job(JOB, timedelta(seconds=0.2), flaky, jitter=0)
        job_runner = runner(database, job, metrics=metrics)
        await job_runner.start()

        async def three_runs() -> bool:
            runs = await JobStore(database).runs(JOB)
            return len(runs) >= 3 and runs[0].outcome != "running"

        await eventually(three_runs)
        await job_runner.stop()

        first, second, *rest = await oldest_first(database)
        assert (first.outcome, first.error) == ("failed", "RuntimeError: disk on fire")
        assert second.outcome == "failed"
        assert second.error is not None and second.error.startswith("TypeError: ")
        assert rest and {(run.outcome, tuple(run.counts.items())) for run in rest} == {
            ("succeeded", (("removed", 3),))
        }
        failures = registry.get_sample_value(
            "ecrd_background_job_runs_total", {"job": JOB, "outcome": "failure"}
        )
        successes = registry.get_sample_value(
            "ecrd_background_job_runs_total", {"job": JOB, "outcome": "success"}
        )
        assert (failures, successes) == (2, len(rest))
        failed_logs = [r for r in caplog.records if r.getMessage() == f"job {JOB} failed"]
        assert len(failed_logs) == 2 and failed_logs[0].levelno == logging.ERROR

    run_scenario(database_url, scenario)


def test_stop_lets_a_running_job_finish(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        work = Recorder(seconds=0.5)
        job_runner = runner(database, Job(JOB, timedelta(hours=1), work, jitter=0))
        await job_runner.start()
        await asyncio.wait_for(work.started.wait(), 10)

        await job_runner.stop(timeout=10)

        assert len(work.spans) == 1  # the run ended before stop returned
        [run] = await JobStore(database).runs(JOB)
        assert (run.outcome, run.counts) == ("succeeded", {"run": 1})
        assert (await schedule_row(database)).lease_holder is None

    run_scenario(database_url, scenario)


def test_stop_cuts_off_a_run_that_outlasts_its_timeout(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        work = Recorder(seconds=60)
        registry = CollectorRegistry()
        job = Job(JOB, timedelta(hours=1), work, jitter=0)
        job_runner = runner(database, job, metrics=JobMetrics(registry, [JOB]))
        await job_runner.start()
        await asyncio.wait_for(work.started.wait(), 10)
        started = time.monotonic()

        await job_runner.stop(timeout=0.3)

        assert time.monotonic() - started < 5
        [run] = await JobStore(database).runs(JOB)
        assert (run.outcome, run.error) == ("failed", CANCELLED_AT_SHUTDOWN)
        assert run.finished_at is not None
        row = await schedule_row(database)
        assert (row.lease_holder, row.lease_until) == (None, None)
        # A run cut off by a stop is not counted as a failure of the job.
        labels = {"job": JOB, "outcome": "failure"}
        assert registry.get_sample_value("ecrd_background_job_runs_total", labels) == 0

    run_scenario(database_url, scenario)


def test_the_record_keeps_the_newest_runs(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        job_runner = runner(database, Job(JOB, timedelta(hours=1), Recorder()))
        long_ago = utcnow() - timedelta(days=1)
        old_runs = [
            {
                "name": JOB,
                "trigger": "schedule",
                "holder": "old:1:0",
                "started_at": long_ago + timedelta(minutes=number),
                "finished_at": long_ago + timedelta(minutes=number),
                "outcome": "succeeded",
                "counts_json": json.dumps({"old": number}),
                "error": None,
            }
            for number in range(KEEP_RUNS + 4)
        ]
        await database.write(lambda connection: connection.execute(insert(job_runs), old_runs))

        record = await job_runner.run_now(JOB)

        runs = await JobStore(database).runs(JOB, limit=1000)
        assert len(runs) == KEEP_RUNS
        assert runs[0] == record
        # The newest 99 of the old runs are kept, the 5 oldest went.
        assert [run.counts["old"] for run in runs[1:]] == list(range(KEEP_RUNS + 3, 4, -1))

    run_scenario(database_url, scenario)


def test_polling_goes_on_after_a_database_error(
    database_url: tuple[str, str | None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ecrd.jobs")

    async def rename(database: Database, old: str, new: str) -> None:
        statement = text(f"ALTER TABLE {old} RENAME TO {new}")
        await database.write(lambda connection: connection.execute(statement))

    async def scenario(_: Databases, database: Database) -> None:
        work = Recorder()
        await JobStore(database).ensure({JOB: utcnow() + timedelta(seconds=1)}, {})
        job_runner = runner(database, Job(JOB, timedelta(hours=1), work))
        await job_runner.start()
        # The schedule goes out of reach for a while, as when the database is down.
        await rename(database, "job_schedules", "job_schedules_away")
        await asyncio.sleep(1.5)
        assert work.spans == []
        await rename(database, "job_schedules_away", "job_schedules")

        async def ran() -> bool:
            return len(work.spans) == 1

        await eventually(ran)
        await job_runner.stop()

        messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ecrd.jobs"]
        warnings = [text for level, text in messages if level == logging.WARNING]
        assert warnings == ["cannot read or take the job schedule; trying again every 0.1 s"]
        assert (logging.INFO, "the job schedule is within reach again") in messages
        [run] = await JobStore(database).runs(JOB)
        assert run.outcome == "succeeded"

    run_scenario(database_url, scenario)


def test_a_first_run_comes_soon_after_the_first_start(database_url: tuple[str, str | None]) -> None:
    async def scenario(_: Databases, database: Database) -> None:
        before = utcnow()
        job = Job(JOB, timedelta(hours=1), Recorder(), jitter=0.1)
        job_runner = runner(database, job)
        await job_runner.start()
        await job_runner.stop()

        [schedule] = await JobStore(database).schedules()
        # Within min(interval * jitter, 1 minute) of the start: not an interval later.
        assert before <= schedule.next_run_at <= utcnow() + timedelta(minutes=1)

    run_scenario(database_url, scenario)


# --- definitions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"name": ""},
        {"name": "x" * 65},
        {"interval": timedelta(0)},
        {"lease": timedelta(seconds=-1)},
        {"jitter": -0.1},
    ],
)
def test_a_job_that_cannot_be_scheduled_is_refused(options: dict[str, Any]) -> None:
    definition: dict[str, Any] = {"name": JOB, "interval": timedelta(hours=1), "run": Recorder()}
    with pytest.raises(ValueError):
        Job(**(definition | options))


def test_two_jobs_of_one_name_are_refused(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'metadata.db'}")
    job = Job(JOB, timedelta(hours=1), Recorder())
    with pytest.raises(ValueError, match="two jobs are named"):
        JobRunner(database, [job, job], None)


def test_a_default_holder_names_the_process(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'metadata.db'}")
    job = Job(JOB, timedelta(hours=1), Recorder())
    first, second = (JobRunner(database, [job], None) for _ in range(2))
    assert f":{os.getpid()}:" in first.holder
    assert first.holder != second.holder


def test_a_runner_stop_drains_its_background_tasks(tmp_path: Path) -> None:
    async def scenario() -> None:
        database = Database(f"sqlite:///{tmp_path / 'metadata.db'}")
        job_runner = JobRunner(database, [Job(JOB, timedelta(hours=1), Recorder())], None)
        finished: list[bool] = []

        async def write() -> None:
            await asyncio.sleep(0.2)
            finished.append(True)

        job_runner.background.spawn(write())
        await job_runner.stop(timeout=5)
        await database.close()
        assert finished == [True]

    asyncio.run(scenario())
