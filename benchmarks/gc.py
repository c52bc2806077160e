"""Garbage collection: how long the collector takes per 10,000 unused blobs, and what it
gives back, on SQLite + filesystem and (with --postgresql) PostgreSQL + S3 (moto's server).

    .venv/bin/python benchmarks/gc.py [--blobs N] [--postgresql] [--tmp DIR]

Each blob is 4 KiB of random bytes, committed through the blob store and recorded as a push
records it, in a repository then deleted (as `DeleteRepository --force` leaves its blobs).
The figures: store bytes before and after, blob rows before and after, seconds for the
collection and seconds per 10,000 blobs. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection, func, select  # noqa: E402

from ecrd.blobs.filesystem import FilesystemBlobStore  # noqa: E402
from ecrd.blobs.s3 import S3BlobStore  # noqa: E402
from ecrd.blobs.store import BlobStore  # noqa: E402
from ecrd.metadata.blobs import BlobRecords  # noqa: E402
from ecrd.metadata.database import Database  # noqa: E402
from ecrd.metadata.garbage import GarbageStore  # noqa: E402
from ecrd.metadata.images import ImageStore  # noqa: E402
from ecrd.metadata.records import RepositorySettings  # noqa: E402
from ecrd.metadata.registries import RegistryStore  # noqa: E402
from ecrd.metadata.repositories import RepositoryStore  # noqa: E402
from ecrd.metadata.schema import blobs  # noqa: E402
from ecrd.metadata.uploads import UploadStore  # noqa: E402
from ecrd.registry.garbage import GarbageCollector  # noqa: E402
from ecrd.registry.uploads import UploadService  # noqa: E402

BLOB_SIZE = 4096
# Setup writes run this many at once (the figure measured is the collection's, not these).
SETUP_CONCURRENCY = 8


async def fill(database: Database, store: BlobStore, count: int) -> int:
    """`count` blobs recorded and linked to a repository, which is then deleted."""
    registries = RegistryStore(database, None)
    registry = await registries.ensure("000000000000", "us-east-1")
    repositories = RepositoryStore(database)
    repository = await repositories.create(
        registry.id,
        "bench/gc",
        "arn:aws:ecr:us-east-1:000000000000:repository/bench/gc",
        RepositorySettings(),
        {},
    )
    assert repository is not None
    records = BlobRecords(database)
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(number: int) -> None:
        data = os.urandom(BLOB_SIZE)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload_id = f"bench-{number}"
        async with limit:
            state = await store.start_upload(upload_id)
            writer = await store.open_upload(upload_id, state, 0)
            await writer.write(data)
            state = await writer.close()
            await store.commit_upload(upload_id, state, digest)
            await records.add_and_link(repository.id, digest, len(data))
            await store.abort_upload(upload_id, state)

    await asyncio.gather(*(one(number) for number in range(count)))
    await repositories.delete(repository, force=True)
    return count * BLOB_SIZE


async def stored_bytes(store: BlobStore) -> int:
    total, after = 0, None
    for _page in range(100_000):
        page = await store.stored_blobs(after, 1000)
        total += sum(blob.size for blob in page)
        if len(page) < 1000:
            return total
        after = page[-1].digest
    raise RuntimeError("too many pages")


async def rows(database: Database) -> int:
    def count(connection: Connection) -> int:
        return int(connection.execute(select(func.count()).select_from(blobs)).scalar() or 0)

    return await database.read(count)


async def measure(label: str, database: Database, store: BlobStore, count: int) -> None:
    await database.migrate()
    started = time.perf_counter()
    await fill(database, store, count)
    setup = time.perf_counter() - started
    before_bytes, before_rows = await stored_bytes(store), await rows(database)
    uploads = UploadService(UploadStore(database), BlobRecords(database), store, 1000)
    collector = GarbageCollector(
        GarbageStore(database), ImageStore(database), store, uploads, 7 * 86400
    )
    started = time.perf_counter()
    report = await collector.collect(grace_seconds=0)
    seconds = time.perf_counter() - started
    after_bytes, after_rows = await stored_bytes(store), await rows(database)
    print(f"{label}: {count} unused blobs of {BLOB_SIZE} B (set up in {setup:.1f} s)")
    print(f"  store bytes  {before_bytes:>12,} -> {after_bytes:,}")
    print(f"  blob rows    {before_rows:>12,} -> {after_rows:,}")
    print(f"  collected    {report.blobs:>12,} blobs, {report.blob_bytes:,} B in {seconds:.2f} s")
    print(f"  per 10,000 blobs: {seconds * 10_000 / max(report.blobs, 1):.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--tmp", type=Path, default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.tmp) as folder:
        root = Path(folder)
        database = Database(f"sqlite:///{root / 'metadata.db'}")
        store: BlobStore = FilesystemBlobStore(root)
        try:
            await measure("SQLite + filesystem", database, store, options.blobs)
        finally:
            await database.close()
        if options.postgresql:
            await postgresql_and_s3(options.blobs)


async def postgresql_and_s3(count: int) -> None:
    from tests.conftest import postgres_database
    from tests.s3_server import S3Server

    s3 = S3Server()
    s3.start()
    try:
        for name, value in s3.environment().items():
            os.environ[name] = value
        bucket = s3.create_bucket()
        with postgres_database() as url:
            database = Database(url)
            store = S3BlobStore(bucket, endpoint_url=s3.endpoint_url)
            try:
                await measure("PostgreSQL + S3 (moto)", database, store, count)
            finally:
                store.close()
                await database.close()
    finally:
        s3.stop()


if __name__ == "__main__":
    asyncio.run(main())
