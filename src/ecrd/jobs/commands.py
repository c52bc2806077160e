"""`ecrd jobs list` and `ecrd jobs run NAME`: the background jobs' schedule and record, and a
run now, from the command line, against the store the servers use.

    ecrd jobs list [--json]     one line per job: interval, next run, last run, current holder
    ecrd jobs run NAME          run it in this process now (never while another process runs
                                it); exits non-zero when the name is unknown, the job is busy
                                elsewhere or the run failed

cli.py adds the group with `main.add_command(jobs_group(store_options, _settings))`. It is
made by a function of cli's option decorator and settings loader, instead of importing them
from ecrd.cli, because ecrd.cli imports this module: neither import order can then cycle. The
metadata store and services are imported only when a command runs, so `ecrd --help` stays
quick.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ecrd.jobs.runner import Job
    from ecrd.metadata.jobs import JobRunRecord, JobStatus
    from ecrd.registry.services import RegistryServices
    from ecrd.settings import Settings

OptionsDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Result = TypeVar("Result")
# An error's text on a `jobs list` line: enough to recognise it (--json has all of it).
LISTED_ERROR_CHARS = 200


def jobs_group(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Group:
    """The `jobs` group, its commands taking the store options of every ecrd subcommand."""

    @click.group("jobs")
    def jobs() -> None:
        """Background jobs: their schedule and last runs, and a run now."""

    @jobs.command("list")
    @store_options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
    def list_jobs(config_file: Path | None, as_json: bool, **flags: Any) -> None:
        """Each job: its interval, next run, last run, and who runs it now."""
        settings = load_settings(config_file, **flags)

        async def read(services: RegistryServices) -> tuple[list[Job], list[JobStatus]]:
            from ecrd.jobs.catalog import scheduled_jobs
            from ecrd.metadata.jobs import JobStore

            statuses = await JobStore(services.database).statuses()
            return scheduled_jobs(services, settings), statuses

        catalog, statuses = with_services(settings, read)
        listed = _listed(catalog, statuses)
        if as_json:
            click.echo(json.dumps({"jobs": [_as_json(*entry) for entry in listed]}, indent=2))
            return
        from ecrd.metadata.records import utcnow

        now = utcnow()
        for name, job, status in listed:
            click.echo(_line(name, job, status, now))

    @jobs.command("run")
    @store_options
    @click.argument("name")
    def run_job(config_file: Path | None, name: str, **flags: Any) -> None:
        """Run the job NAME now, here; print its outcome and counts."""
        from ecrd.jobs.runner import JobBusy, UnknownJob

        settings = load_settings(config_file, **flags)

        async def run(services: RegistryServices) -> JobRunRecord:
            from ecrd.jobs.catalog import scheduled_jobs
            from ecrd.jobs.runner import JobRunner

            runner = JobRunner(services.database, scheduled_jobs(services, settings), None)
            return await runner.run_now(name)

        try:
            record = with_services(settings, run)
        except (UnknownJob, JobBusy) as error:
            raise click.ClickException(str(error)) from None
        seconds = 0.0
        if record.finished_at is not None:
            seconds = (record.finished_at - record.started_at).total_seconds()
        if record.outcome != "succeeded":
            error_text = _one_line(record.error or "no error recorded")
            raise click.ClickException(
                f"{name} {record.outcome} after {seconds:.2f} s: {error_text}"
            )
        click.echo(f"{name} {record.outcome} in {seconds:.2f} s: {_counts_text(record)}")

    return jobs


def with_services(
    settings: Settings, work: Callable[[RegistryServices], Awaitable[Result]]
) -> Result:
    """`work(services)` against the (migrated) store, which must exist, then close it."""
    from ecrd.registry.services import build_services
    from ecrd.startup import StartupError, check_keys_store

    try:
        check_keys_store(settings)
    except StartupError as error:
        raise SystemExit(f"ecrd: {error}") from None

    async def run() -> Result:
        services = build_services(settings)
        try:
            await services.database.migrate()
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(run())


def _listed(
    catalog: list[Job], statuses: list[JobStatus]
) -> list[tuple[str, Job | None, JobStatus | None]]:
    """The catalog's jobs in its order, then rows of jobs this ecrd no longer has."""
    by_name = {status.schedule.name: status for status in statuses}
    listed: list[tuple[str, Job | None, JobStatus | None]] = [
        (job.name, job, by_name.pop(job.name, None)) for job in catalog
    ]
    listed += [(name, None, status) for name, status in sorted(by_name.items())]
    return listed


def _line(name: str, job: Job | None, status: JobStatus | None, now: datetime) -> str:
    from ecrd.jobs.catalog import duration_text

    parts = [name]
    if job is None:
        parts.append("(not a job of this ecrd)")
    else:
        parts.append(f"every {duration_text(job.interval.total_seconds())}")
    if status is None:
        parts.append("not scheduled yet (no server has started with it)")
        return "  ".join(parts)
    schedule = status.schedule
    parts.append(f"next {_time(schedule.next_run_at)}")
    run = status.last_run
    if run is None:
        parts.append("never run")
    elif run.finished_at is None:
        parts.append(f"last started {_time(run.started_at)} ({run.trigger}), not finished")
    else:
        text = f"last {run.outcome} {_time(run.finished_at)} ({run.trigger})"
        if run.counts:
            text += f": {_counts_text(run)}"
        if run.error:
            text += f": {_one_line(run.error)}"
        parts.append(text)
    if schedule.lease_holder is not None and schedule.lease_until is not None:
        if schedule.leased_at(now):
            parts.append(f"running on {schedule.lease_holder} until {_time(schedule.lease_until)}")
        else:
            parts.append(f"lease of {schedule.lease_holder} ran out {_time(schedule.lease_until)}")
    return "  ".join(parts)


def _as_json(name: str, job: Job | None, status: JobStatus | None) -> dict[str, Any]:
    schedule = None if status is None else status.schedule
    run = None if status is None else status.last_run
    return {
        "name": name,
        "description": None if job is None else job.description,
        "interval_seconds": None if job is None else job.interval.total_seconds(),
        "next_run_at": None if schedule is None else _iso(schedule.next_run_at),
        "lease_holder": None if schedule is None else schedule.lease_holder,
        "lease_until": None if schedule is None else _iso(schedule.lease_until),
        "last_run": None if run is None else _run_json(run),
    }


def _run_json(run: JobRunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "trigger": run.trigger,
        "holder": run.holder,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "outcome": run.outcome,
        "counts": dict(run.counts),
        "error": run.error,
    }


def _counts_text(run: JobRunRecord) -> str:
    if not run.counts:
        return "no counts"
    return ", ".join(f"{name} {count}" for name, count in sorted(run.counts.items()))


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= LISTED_ERROR_CHARS:
        return flat
    return flat[: LISTED_ERROR_CHARS - 1] + "…"


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
