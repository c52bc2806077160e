"""The garbage collector's claim on a blob against uploads and mounts of the same bytes, at the
moments that matter, made certain: the claim is taken, then the upload finishes, then the
collector deletes. On SQLite and on PostgreSQL (the `database_url` fixture), filesystem
blobs."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ecrd.metadata.blobs import STALE_CLAIM, BlobRecords
from ecrd.metadata.garbage import GarbageStore
from ecrd.metadata.records import Registry, utcnow
from ecrd.metadata.schema import blobs
from ecrd.registry.services import RegistryServices, build_services
from ecrd.settings import Settings
from tests.metadata.conftest import database_url, open_database

__all__ = ["database_url"]
pytestmark = pytest.mark.metadata_independent  # both stores already, through the fixture

LAYER = b"claimed layer " * 5000
LAYER_DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


Scenario = Callable[[RegistryServices, Registry, GarbageStore], Awaitable[None]]


def run(database_url: tuple[str, str | None], tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        database = open_database(database_url)
        await database.migrate()
        services = build_services(Settings(data_dir=tmp_path), database)
        try:
            registry = await services.registries.ensure("000000000000", "us-east-1")
            await scenario(services, registry, GarbageStore(database))
            # and no upload bytes are left behind
            assert list((tmp_path / "uploads").iterdir()) == []
        finally:
            await services.close()

    asyncio.run(main())


async def _unused_blob(services: RegistryServices, registry: Registry) -> None:
    """The layer stored once and then unlinked: a blob the collector may take."""
    repository = await services.repositories.for_push(registry, "claims/old")
    upload = await services.uploads.start(repository)
    appended = await services.uploads.append(repository, upload.id, _body(LAYER))
    await services.uploads.finish(repository, upload.id, LAYER_DIGEST, appended)
    await services.blobs.delete(repository, LAYER_DIGEST)


async def _claim(store: GarbageStore) -> datetime:
    now = utcnow()
    claimed = await store.claim([LAYER_DIGEST], now + timedelta(seconds=1), now - STALE_CLAIM, now)
    assert [blob.digest for blob in claimed] == [LAYER_DIGEST]
    return now


def test_a_finish_waits_for_the_claim_and_stores_its_bytes_again(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(services: RegistryServices, registry: Registry, store: GarbageStore) -> None:
        await _unused_blob(services, registry)
        claimed_at = await _claim(store)
        # when another repository's upload of the same bytes finishes while the claim holds
        repository = await services.repositories.for_push(registry, "claims/new")
        upload = await services.uploads.start(repository)
        appended = await services.uploads.append(repository, upload.id, _body(LAYER))
        finishing = asyncio.ensure_future(
            services.uploads.finish(repository, upload.id, LAYER_DIGEST, appended)
        )
        await asyncio.sleep(0.5)
        # then it waits (its commit found the old bytes in place, which are about to go)
        assert not finishing.done()
        assert await services.blob_store.stat(LAYER_DIGEST) == len(LAYER)
        # and when the collector deletes the bytes and then the row
        assert await services.blob_store.delete_many([LAYER_DIGEST]) == []
        assert await store.release([LAYER_DIGEST], claimed_at) == 1
        blob = await asyncio.wait_for(finishing, timeout=15)
        # then the upload has stored its bytes again, and the blob is recorded and linked
        assert blob.digest == LAYER_DIGEST
        assert await services.blob_store.stat(LAYER_DIGEST) == len(LAYER)
        assert await BlobRecords(services.database).linked(repository.id, LAYER_DIGEST)
        read = b"".join([piece async for piece in services.blob_store.read(LAYER_DIGEST)])
        assert read == LAYER
        # and the collector's next look finds nothing to take
        now = utcnow()
        assert await store.unused_blobs(now, now - STALE_CLAIM, None, 10) == []

    run(database_url, tmp_path, scenario)


def test_a_mount_of_a_claimed_blob_is_refused_so_the_client_uploads(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(services: RegistryServices, registry: Registry, store: GarbageStore) -> None:
        await _unused_blob(services, registry)
        await _claim(store)
        repository = await services.repositories.for_push(registry, "claims/mount")
        assert await BlobRecords(services.database).link(repository.id, LAYER_DIGEST) is None

    run(database_url, tmp_path, scenario)


def test_a_dead_collectors_claim_is_taken_back_by_an_upload(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(services: RegistryServices, registry: Registry, store: GarbageStore) -> None:
        await _unused_blob(services, registry)
        claimed_at = await _claim(store)
        # given the claim older than a live collector's ever is (it died after claiming)
        long_ago = utcnow() - STALE_CLAIM - timedelta(minutes=1)
        statement = update(blobs).values(deleting_since=long_ago)
        await services.database.write(lambda connection: connection.execute(statement))
        # when the same bytes are uploaded, then the upload finishes at once and keeps them
        repository = await services.repositories.for_push(registry, "claims/after")
        upload = await services.uploads.start(repository)
        appended = await services.uploads.append(repository, upload.id, _body(LAYER))
        blob = await asyncio.wait_for(
            services.uploads.finish(repository, upload.id, LAYER_DIGEST, appended), timeout=5
        )
        assert blob.digest == LAYER_DIGEST
        rows = await services.database.read(
            lambda connection: list(connection.execute(blobs.select()))
        )
        assert [(row.digest, row.deleting_since) for row in rows] == [(LAYER_DIGEST, None)]
        # and the collector's release of its old claim leaves the blob alone
        assert await store.release([LAYER_DIGEST], claimed_at) == 0
        assert await services.blob_store.stat(LAYER_DIGEST) == len(LAYER)

    run(database_url, tmp_path, scenario)


def test_recording_says_when_the_row_is_new_so_the_upload_commits_again(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(services: RegistryServices, registry: Registry, store: GarbageStore) -> None:
        records = BlobRecords(services.database)
        first = await services.repositories.for_push(registry, "claims/first")
        second = await services.repositories.for_push(registry, "claims/second")
        # a new row: whatever bytes the commit found may have been a collected copy's
        assert (await records.add_and_link(first.id, LAYER_DIGEST, len(LAYER)))[1] is True
        # a row that was there, live and linked elsewhere: its bytes are safe
        assert (await records.add_and_link(second.id, LAYER_DIGEST, len(LAYER)))[1] is False
        # a row taken back from a dead collector: as new
        long_ago = utcnow() - STALE_CLAIM - timedelta(minutes=1)
        statement = update(blobs).values(deleting_since=long_ago)
        await services.database.write(lambda connection: connection.execute(statement))
        assert (await records.add_and_link(second.id, LAYER_DIGEST, len(LAYER)))[1] is True
        for repository in (first, second):
            await services.blobs.delete(repository, LAYER_DIGEST)
        await services.database.write(lambda connection: connection.execute(blobs.delete()))

    run(database_url, tmp_path, scenario)
