"""The job runner: named background jobs, each run by one process at a time of all the
processes that share the metadata store, with a record of every run.

A job is a name, an interval and a coroutine function that does the work and returns counts
({"removed": 3}). Every process runs a JobRunner with the same jobs; the database decides
which process runs each tick (see JobStore for the rows):

    start()     a schedule row per job, if none: a new job is due at once (a fresh store is
                swept at its first start; later starts find the row and keep its time)
    every poll  read the schedule rows; for a job due and free, take it with ONE conditional
                UPDATE (JobStore.take) that moves next_run_at to now + interval *
                (1 + uniform(0, jitter)) and leases the job until now + lease; the process
                whose UPDATE changed the row runs the job, the others changed nothing
    a run       recorded "running", run under the job metrics and cut off when its lease ends
                (past it another process may take the job), then recorded "succeeded" or
                "failed" with its counts or error, the lease let go and the job's record
                pruned to its newest 100 runs, all in one transaction
    run_now()   the same, taking the lease whenever no lease holds, leaving the schedule be
                (a job with no row yet gets one due an interval later)
    nudge()     run_now in the background for an event (new work queued): a run under way
                in this process is followed by one more, as it may have missed the work; a
                job another process holds is left to it (its next tick finds the work)
    stop()      no new runs; a running one gets `timeout` to end, then is cancelled and
                recorded "failed" ("cancelled at shutdown"); the background tasks drain

A failing job is logged (logger "ecrd.jobs") and recorded, and the next tick comes as usual;
a database error while polling is logged and the next poll tries again. Times are each
process's own UTC clock: processes on several hosts need clocks in step (NTP) to well within
a job's interval and lease (a clock running ahead sees a lease end early), as tokens need.

Why not APScheduler: 4.x, the version with data stores shared by several processes, is still
a pre-release and brings its own tables and an event broker to run beside ecrd's schema;
3.x has no lease shared between processes at all (each process would run every job). The part
ecrd needs, one conditional UPDATE on rows it already migrates, is smaller than either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from ecrd.jobs.background import BackgroundTasks
from ecrd.metadata.database import Database
from ecrd.metadata.jobs import (
    COMMAND_TRIGGER,
    EVENT_TRIGGER,
    FAILED,
    SCHEDULE_TRIGGER,
    SUCCEEDED,
    JobRunRecord,
    JobStore,
    bounded_error,
)
from ecrd.metadata.records import utcnow

if TYPE_CHECKING:
    from ecrd.observability.metrics import JobMetrics

# What the schema's columns hold.
MAX_JOB_NAME_CHARS = 64
MAX_HOLDER_CHARS = 128
# Each pause between polls is poll_seconds * (1 + uniform(0, this)), so processes started
# together do not poll in step.
POLL_JITTER = 0.2
# A run cancelled at shutdown gets this long to record its end and let go of its lease.
CANCEL_GRACE_SECONDS = 5.0
CANCELLED_AT_SHUTDOWN = "cancelled at shutdown"
CANCELLED = "cancelled"
logger = logging.getLogger("ecrd.jobs")


@dataclass(frozen=True)
class Job:
    name: str  # "upload_sweep"
    interval: timedelta  # time between scheduled runs
    run: Callable[[], Awaitable[Mapping[str, int]]]  # does the work, returns counts
    jitter: float = 0.1  # each next run is interval * (1 + uniform(0, jitter)) away
    # The longest a run may hold the job: a run still going then is cut off (another process
    # may take the job from then on), and a dead holder's lease runs out.
    lease: timedelta = timedelta(minutes=10)
    description: str = ""  # one line for `ecrd jobs list`

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= MAX_JOB_NAME_CHARS:
            raise ValueError(f"a job name is 1 to {MAX_JOB_NAME_CHARS} characters: {self.name!r}")
        if self.interval <= timedelta(0) or self.lease <= timedelta(0):
            raise ValueError(f"job {self.name}: the interval and the lease must be positive")
        if self.jitter < 0:
            raise ValueError(f"job {self.name}: the jitter must not be negative")


class UnknownJob(KeyError):
    """No job of that name; `known` lists the names there are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = tuple(sorted(known))

    def __str__(self) -> str:
        return f"no job named {self.name!r} (jobs: {', '.join(self.known) or 'none'})"


class JobBusy(Exception):
    """The job is running already, in this process or another: `holder` holds its lease
    until `lease_until` (None when the lease was let go just as this was found)."""

    def __init__(self, name: str, holder: str | None, lease_until: datetime | None) -> None:
        self.name = name
        self.holder = holder
        self.lease_until = lease_until
        if holder is None or lease_until is None:
            message = f"job {name} was running elsewhere a moment ago; try again"
        else:
            message = (
                f"job {name} is running on {holder}; its lease ends at "
                f"{lease_until:%Y-%m-%dT%H:%M:%SZ} at the latest"
            )
        super().__init__(message)


class LeaseRanOut(Exception):
    """A run went on past its lease and was cut off."""


def default_holder() -> str:
    """A name for this process that no other has: host, process id and a random part (a
    process id is reused, and a runner made again in the same process is another holder)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class _Taken:
    """A lease this runner took, and the run recorded with it."""

    run_id: int
    trigger: str
    started_at: datetime
    lease_until: datetime


class JobRunner:
    """Runs `jobs` on their schedule in this process whenever the database gives it the tick,
    and on demand (`run_now`). `background` holds the process's fire-and-forget tasks, drained
    by `stop` (a new set when not given)."""

    def __init__(
        self,
        database: Database,
        jobs: Sequence[Job],
        metrics: JobMetrics | None,
        holder: str | None = None,
        poll_seconds: float = 5.0,
        background: BackgroundTasks | None = None,
    ) -> None:
        self._jobs: dict[str, Job] = {}
        for job in jobs:
            if job.name in self._jobs:
                raise ValueError(f"two jobs are named {job.name}")
            self._jobs[job.name] = job
        self.holder = holder or default_holder()
        if len(self.holder) > MAX_HOLDER_CHARS:
            raise ValueError(f"a holder name is at most {MAX_HOLDER_CHARS} characters")
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self._store = JobStore(database)
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self.background = background if background is not None else BackgroundTasks()
        self._poller: asyncio.Task[None] | None = None
        # The runs of this runner under way, by job name: a job runs at most once at a time.
        self._running: dict[str, tuple[asyncio.Task[JobRunRecord], _Taken]] = {}
        self._stopping = False
        self._stop_requested = asyncio.Event()
        # Jobs nudged and not started yet, and jobs to run again when their run here ends.
        self._nudged: set[str] = set()
        self._again: set[str] = set()

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(self._jobs.values())

    async def start(self) -> None:
        """Give every job a schedule row (if it has none) and start polling for due runs."""
        if self._poller is not None or self._stopping:
            raise RuntimeError("a job runner starts once")
        await self._ensure_schedules(self._jobs.values(), utcnow())
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="job runner")

    async def run_now(self, name: str, trigger: str = COMMAND_TRIGGER) -> JobRunRecord:
        """Run the job now, whenever it is next due, and return its record; the schedule is
        left as it is. UnknownJob for a name no job has; JobBusy while any process holds the
        job's lease. A caller that stops waiting does not cut the run short."""
        job = self._jobs.get(name)
        if job is None:
            raise UnknownJob(name, self._jobs)
        running_here = self._running.get(name)
        if running_here is not None:
            raise JobBusy(name, self.holder, running_here[1].lease_until)
        now = utcnow()
        await self._ensure_schedules([job], now, running_now=True)
        lease_until = now + job.lease
        claim = await self._store.take(name, self.holder, trigger, now, lease_until)
        if claim.run_id is None:
            raise JobBusy(name, claim.lease_holder, claim.lease_until)
        task = self._start_run(job, _Taken(claim.run_id, trigger, now, lease_until))
        return await asyncio.shield(task)

    def nudge(self, name: str) -> None:
        """Run the job soon, as `run_now` would, without waiting for it (see the module
        docstring). Unknown names and a stopping runner are ignored."""
        if self._stopping or name not in self._jobs:
            return
        if name in self._running:
            self._again.add(name)
            return
        if name in self._nudged:
            return
        self._nudged.add(name)
        self.background.spawn(self._run_nudged(name))

    async def _run_nudged(self, name: str) -> None:
        try:
            await self.run_now(name, EVENT_TRIGGER)
        except JobBusy:
            pass  # running here (then `_again` has it) or elsewhere: that run takes the work
        finally:
            self._nudged.discard(name)

    async def stop(self, timeout: float = 30.0) -> None:
        """Take no more runs; give a running one up to `timeout` seconds to end, then cancel it
        (recorded "failed": "cancelled at shutdown", its lease let go); drain `background`
        in the same time."""
        self._stopping = True
        self._stop_requested.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._poller is not None:
            poller, self._poller = self._poller, None
            # Let a poll in flight end rather than cut it between taking a run and starting it.
            await asyncio.wait([poller], timeout=timeout)
            if not poller.done():
                poller.cancel()
                await asyncio.wait([poller], timeout=CANCEL_GRACE_SECONDS)
        remaining = max(0.0, deadline - loop.time())
        await asyncio.gather(self._wait_for_runs(remaining), self.background.drain(remaining))

    async def _wait_for_runs(self, timeout: float) -> None:
        tasks = [task for task, _ in self._running.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if not pending:
            return
        logger.warning("cancelling %d job runs still running at shutdown", len(pending))
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)

    async def _ensure_schedules(
        self, jobs: Iterable[Job], now: datetime, running_now: bool = False
    ) -> None:
        """A schedule row for each of `jobs` that has none: first due now, or an interval
        from `now` when `running_now` (a run on demand starting then is its latest run)."""
        first_runs: dict[str, datetime] = {}
        latest_next_runs: dict[str, datetime] = {}
        for job in jobs:
            if running_now:
                first_runs[job.name] = now + job.interval
            else:
                first_runs[job.name] = now
            latest_next_runs[job.name] = now + job.interval * (1 + job.jitter)
        await self._store.ensure(first_runs, latest_next_runs)

    async def _poll(self) -> None:
        failing = False
        while not self._stopping:
            try:
                await self._start_due_runs()
            except Exception:  # the database may be down for a while: every poll tries again
                if not failing:
                    logger.warning(
                        "cannot read or take the job schedule; trying again every %.1f s",
                        self._poll_seconds,
                        exc_info=True,
                    )
                else:
                    logger.debug("the job schedule is still out of reach", exc_info=True)
                failing = True
            else:
                if failing:
                    logger.info("the job schedule is within reach again")
                failing = False
            pause = self._poll_seconds * (1 + random.uniform(0, POLL_JITTER))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), pause)

    async def _start_due_runs(self) -> None:
        # A plain read first: most polls find nothing due, and a read costs no write lock.
        for schedule in await self._store.schedules():
            job = self._jobs.get(schedule.name)
            now = utcnow()
            if job is None or self._stopping or job.name in self._running:
                continue
            if schedule.next_run_at > now or schedule.leased_at(now):
                continue
            lease_until = now + job.lease
            next_run_at = now + job.interval * (1 + random.uniform(0, job.jitter))
            claim = await self._store.take(
                job.name, self.holder, SCHEDULE_TRIGGER, now, lease_until, next_run_at
            )
            if claim.run_id is not None:  # else another process took this tick first
                self._start_run(job, _Taken(claim.run_id, SCHEDULE_TRIGGER, now, lease_until))

    def _start_run(self, job: Job, taken: _Taken) -> asyncio.Task[JobRunRecord]:
        task = asyncio.get_running_loop().create_task(
            self._execute(job, taken), name=f"job {job.name}"
        )
        self._running[job.name] = (task, taken)
        task.add_done_callback(partial(self._run_ended, job.name))
        return task

    def _run_ended(self, name: str, task: asyncio.Task[JobRunRecord]) -> None:
        entry = self._running.get(name)
        if entry is not None and entry[0] is task:
            del self._running[name]
        if name in self._again:
            self._again.discard(name)
            self.nudge(name)
        if not task.cancelled() and task.exception() is not None:
            logger.error("job %s: the runner failed", name, exc_info=task.exception())

    async def _execute(self, job: Job, taken: _Taken) -> JobRunRecord:
        started = time.monotonic()
        counts: dict[str, int] = {}
        try:
            counts = await self._call(job, taken.lease_until)
        except asyncio.CancelledError:
            reason = CANCELLED_AT_SHUTDOWN if self._stopping else CANCELLED
            logger.warning("job %s: run %d %s", job.name, taken.run_id, reason)
            await self._record_end(job, taken, FAILED, counts, reason)
            raise
        except Exception as failure:  # a job's failure is recorded; the runner goes on
            logger.error("job %s failed", job.name, exc_info=failure)
            error = _describe(failure)
            finished_at = await self._record_end(job, taken, FAILED, counts, error)
            return self._record(job, taken, finished_at, FAILED, counts, error)
        seconds = time.monotonic() - started
        level = logging.INFO if any(counts.values()) else logging.DEBUG
        logger.log(level, "job %s succeeded in %.2f s: %s", job.name, seconds, counts)
        finished_at = await self._record_end(job, taken, SUCCEEDED, counts, None)
        return self._record(job, taken, finished_at, SUCCEEDED, counts, None)

    async def _call(self, job: Job, lease_until: datetime) -> dict[str, int]:
        """The job's work, timed and counted, cut off when its lease ends."""
        timer = asyncio.timeout((lease_until - utcnow()).total_seconds())
        watched: AbstractContextManager[object] = (
            contextlib.nullcontext() if self._metrics is None else self._metrics.run(job.name)
        )
        with watched:
            try:
                async with timer:
                    result = await job.run()
            except TimeoutError:
                if timer.expired():
                    raise LeaseRanOut(
                        f"ran past its lease of {job.lease.total_seconds():g} s and was cut off"
                    ) from None
                raise
            counts = _checked_counts(result)
            if self._metrics is not None:
                self._metrics.count(job.name, counts)
            return counts

    async def _record_end(
        self, job: Job, taken: _Taken, outcome: str, counts: Mapping[str, int], error: str | None
    ) -> datetime:
        finished_at = utcnow()
        write = asyncio.ensure_future(
            self._store.finish(
                taken.run_id,
                job.name,
                self.holder,
                taken.lease_until,
                finished_at,
                outcome,
                counts,
                error,
            )
        )
        write.add_done_callback(partial(_report_failed_end, job.name, taken))
        try:
            # Shielded: this write lets go of the lease, so a stop must not cut it off.
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait([write], timeout=CANCEL_GRACE_SECONDS)
            raise
        except Exception:  # logged by _report_failed_end; the lease runs out by itself
            pass
        return finished_at

    def _record(
        self,
        job: Job,
        taken: _Taken,
        finished_at: datetime,
        outcome: str,
        counts: Mapping[str, int],
        error: str | None,
    ) -> JobRunRecord:
        return JobRunRecord(
            id=taken.run_id,
            name=job.name,
            trigger=taken.trigger,
            holder=self.holder,
            started_at=taken.started_at,
            finished_at=finished_at,
            outcome=outcome,
            counts=counts,
            error=error,
        )


def _checked_counts(result: object) -> dict[str, int]:
    """A job's result as the counts a run records: names and whole numbers, nothing else."""
    if not isinstance(result, Mapping):
        raise TypeError(f"the job returned {type(result).__name__}, not a mapping of counts")
    counts: dict[str, int] = {}
    for key, value in result.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"the job's counts must map names to integers: {key!r}: {value!r}")
        counts[key] = value
    return counts


def _describe(error: BaseException) -> str:
    text = str(error)
    return bounded_error(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def _report_failed_end(name: str, taken: _Taken, write: asyncio.Future[None]) -> None:
    if not write.cancelled() and write.exception() is not None:
        logger.error(
            "job %s: cannot record the end of run %d; its lease runs out at %s",
            name,
            taken.run_id,
            taken.lease_until,
            exc_info=write.exception(),
        )
