"""`ecrd jobs list` and `ecrd jobs run NAME` against a store made as a server makes it, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text, update

from ecrd.auth.tokens import TokenIssuer
from ecrd.cli import _settings, store_options
from ecrd.jobs.commands import jobs_group
from ecrd.metadata.database import Database
from ecrd.metadata.jobs import JobRunRecord, JobStore
from ecrd.metadata.records import utcnow
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.repositories import RepositoryStore
from ecrd.metadata.schema import signing_keys, uploads
from ecrd.metadata.signing_keys import SigningKeyStore
from ecrd.metadata.uploads import UploadStore
from ecrd.sealing import load_keyring
from ecrd.settings import Settings
from tests.conftest import postgres_database

pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass

Value = TypeVar("Value")


@dataclass
class CliStore:
    """A store made as a server would have made it, and `ecrd jobs` run against it."""

    url: str
    arguments: list[str]
    data_dir: Path

    def invoke(self, *arguments: str) -> Result:
        command = jobs_group(store_options, _settings)
        return CliRunner().invoke(command, [*arguments, *self.arguments])

    def on_store(self, work: Callable[[Database], Awaitable[Value]]) -> Value:
        async def main() -> Value:
            database = Database(self.url)
            try:
                return await work(database)
            finally:
                await database.close()

        return asyncio.run(main())


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliStore]:
    for name in list(os.environ):
        if name.startswith("ECRD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./ecrd.toml of the developer's
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        store = CliStore(
            f"sqlite:///{data_dir / 'metadata.db'}", ["--data-dir", str(data_dir)], data_dir
        )
        store.on_store(Database.migrate)
        yield store
        return
    with postgres_database() as url:
        store = CliStore(url, ["--data-dir", str(data_dir), "--database-url", url], data_dir)
        store.on_store(Database.migrate)
        yield store


def abandon_an_upload(store: CliStore) -> str:
    """An upload untouched for 8 days (past the 7 of upload_expiry_seconds), with its bytes."""
    upload_id = "abandoned-upload"

    async def work(database: Database) -> None:
        registry = await RegistryStore(database).ensure("000000000000", "us-east-1")
        repository = await RepositoryStore(database).ensure(registry.id, "team/app", "arn:app")
        await UploadStore(database).create(upload_id, repository, "{}", 10)
        eight_days_ago = utcnow() - timedelta(days=8)
        statement = update(uploads).values(created_at=eight_days_ago, updated_at=eight_days_ago)
        await database.write(lambda connection: connection.execute(statement))

    store.on_store(work)
    (store.data_dir / "uploads").mkdir(exist_ok=True)
    (store.data_dir / "uploads" / upload_id).write_bytes(b"half a layer")
    return upload_id


def one_line_error(result: Result, *named: str) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text_named in named:
        assert text_named in lines[0], lines[0]
    return lines[0]


def test_jobs_run_sweeps_abandoned_uploads(cli_store: CliStore) -> None:
    abandon_an_upload(cli_store)
    # and upload bytes no row names (a process killed before it recorded them): one written
    # 8 days ago, one just now (its upload may be starting: the row comes after the bytes)
    folder = cli_store.data_dir / "uploads"
    (folder / "orphan-old").write_bytes(b"left by a crash")
    eight_days_ago = (utcnow() - timedelta(days=8)).timestamp()
    os.utime(folder / "orphan-old", (eight_days_ago, eight_days_ago))
    (folder / "orphan-new").write_bytes(b"just started")

    result = cli_store.invoke("run", "upload_sweep")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("upload_sweep succeeded in ")
    assert result.stdout.rstrip().endswith(": orphans_removed 1, removed 1")
    assert sorted(path.name for path in folder.iterdir()) == ["orphan-new"]

    async def look(database: Database) -> tuple[int, list[JobRunRecord]]:
        count = select(func.count()).select_from(uploads)
        left = await database.read(lambda connection: connection.execute(count).scalar_one())
        return left, await JobStore(database).runs("upload_sweep")

    left, [run] = cli_store.on_store(look)
    assert left == 0
    assert (run.trigger, run.outcome, run.counts) == (
        "command",
        "succeeded",
        {"removed": 1, "orphans_removed": 1},
    )
    assert f":{os.getpid()}:" in run.holder  # the command's own process ran it


def test_jobs_list_shows_the_schedule_and_the_last_run(cli_store: CliStore) -> None:
    before = cli_store.invoke("list")
    assert before.exit_code == 0, before.output
    assert before.stdout.splitlines() == [
        "upload_sweep  every 1h  not scheduled yet (no server has started with it)",
        "garbage_collection  every 1h  not scheduled yet (no server has started with it)",
        "signing_key_rotation  every 1h  not scheduled yet (no server has started with it)",
        "lifecycle  every 1h  not scheduled yet (no server has started with it)",
        "replication  every 10s  not scheduled yet (no server has started with it)",
        "signing  every 10s  not scheduled yet (no server has started with it)",
        "scanning  every 10s  not scheduled yet (no server has started with it)",
    ]
    assert cli_store.invoke("run", "upload_sweep").exit_code == 0

    lines = cli_store.invoke("list")
    listed = cli_store.invoke("list", "--json")

    assert lines.exit_code == 0 and listed.exit_code == 0, (lines.output, listed.output)
    [line] = [line for line in lines.stdout.splitlines() if line.startswith("upload_sweep")]
    name, every, next_run, last = line.split("  ")
    assert (name, every) == ("upload_sweep", "every 1h")
    assert next_run.startswith("next ")
    assert last.startswith("last succeeded ")
    assert last.endswith(" (command): orphans_removed 0, removed 0")
    [job] = [job for job in json.loads(listed.stdout)["jobs"] if job["name"] == "upload_sweep"]
    assert (job["name"], job["interval_seconds"], job["lease_holder"]) == (
        "upload_sweep",
        3600,
        None,
    )
    assert "upload_expiry_seconds" in job["description"]
    assert job["last_run"]["outcome"] == "succeeded"
    # The run on demand made the schedule row: the next run is an interval after it.
    next_run_at = datetime.fromisoformat(job["next_run_at"])
    ran_at = datetime.fromisoformat(job["last_run"]["started_at"])
    assert next_run_at - ran_at >= timedelta(hours=1)
    assert (job["last_run"]["trigger"], job["last_run"]["counts"]) == (
        "command",
        {"removed": 0, "orphans_removed": 0},
    )


def test_jobs_run_signing_key_rotation_rotates_only_an_old_key(cli_store: CliStore) -> None:
    async def first_key_and_token(database: Database) -> str:
        issuer = TokenIssuer(SigningKeyStore(database))
        await issuer.start()
        token, _ = await issuer.issue("000000000000", None, "us-east-1")
        return token

    token = cli_store.on_store(first_key_and_token)
    # a key younger than signing_key_rotation_days is kept
    fresh = cli_store.invoke("run", "signing_key_rotation")
    assert fresh.exit_code == 0 and fresh.stdout.endswith(": rotated 0\n"), fresh.output

    async def age_the_key(database: Database) -> None:
        await database.write(
            lambda connection: connection.execute(
                update(signing_keys).values(created_at=utcnow() - timedelta(days=31))
            )
        )

    cli_store.on_store(age_the_key)
    # one older than that is replaced, and a token it signed still verifies
    rotated = cli_store.invoke("run", "signing_key_rotation")
    assert rotated.exit_code == 0 and rotated.stdout.endswith(": rotated 1\n"), rotated.output

    # (the new key is sealed with the keys `ecrd jobs run` found, or made, in the data folder)
    keyring = load_keyring(Settings(data_dir=cli_store.data_dir), create=False)

    async def generations_and_old_token(database: Database) -> tuple[list[int], bool]:
        keys = await SigningKeyStore(database, keyring).keys()
        issuer = TokenIssuer(SigningKeyStore(database, keyring))
        await issuer.start()
        return [key.generation for key in keys], await issuer.read(token) is not None

    assert cli_store.on_store(generations_and_old_token) == ([1, 2], True)


def test_jobs_run_of_an_unknown_job_lists_the_jobs(cli_store: CliStore) -> None:
    result = cli_store.invoke("run", "garbage_collect")

    one_line_error(result, "garbage_collect", "upload_sweep")


def test_jobs_run_while_a_server_runs_the_job_says_who(cli_store: CliStore) -> None:
    async def held_elsewhere(database: Database) -> None:
        store = JobStore(database)
        now = utcnow()
        await store.ensure({"upload_sweep": now + timedelta(hours=1)}, {})
        await store.take(
            "upload_sweep", "server-1:42:cafe", "schedule", now, now + timedelta(hours=1)
        )

    cli_store.on_store(held_elsewhere)

    result = cli_store.invoke("run", "upload_sweep")
    listed = cli_store.invoke("list")

    one_line_error(result, "upload_sweep", "server-1:42:cafe")
    assert "running on server-1:42:cafe until " in listed.stdout
    assert "last started " in listed.stdout


def test_jobs_run_of_a_failing_job_exits_non_zero(cli_store: CliStore) -> None:
    async def lose_the_uploads_table(database: Database) -> None:
        statement = text("ALTER TABLE uploads RENAME TO uploads_away")
        await database.write(lambda connection: connection.execute(statement))

    cli_store.on_store(lose_the_uploads_table)

    result = cli_store.invoke("run", "upload_sweep")

    one_line_error(result, "upload_sweep failed after ")
    [run] = cli_store.on_store(lambda database: JobStore(database).runs("upload_sweep"))
    assert run.outcome == "failed" and run.error is not None


def test_jobs_need_an_existing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no-such-data"

    result = CliRunner().invoke(
        jobs_group(store_options, _settings), ["list", "--data-dir", str(missing)]
    )

    assert result.exit_code != 0
    assert "no ecrd data folder" in result.output
    assert not missing.exists()
