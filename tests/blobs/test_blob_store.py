"""The BlobStore contract, run against every implementation (filesystem today)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ecrd.blobs.filesystem import FilesystemBlobStore
from ecrd.blobs.store import BlobStore

pytestmark = pytest.mark.metadata_independent

STORES: dict[str, Callable[[Path], BlobStore]] = {"filesystem": FilesystemBlobStore}


@pytest.fixture(params=sorted(STORES))
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return STORES[request.param](tmp_path)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def upload(store: BlobStore, upload_id: str, *pieces: bytes) -> str:
    state = await store.start_upload(upload_id)
    offset = 0
    for piece in pieces:
        writer = await store.open_upload(upload_id, state, offset)
        await writer.write(piece)
        state = await writer.close()
        offset += len(piece)
    return state


def test_upload_commit_read(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        data = b"x" * 3_000_000 + b"tail"
        digest = digest_of(data)
        # given an upload in two appends, when committed, then the blob reads back whole
        assert await blob_store.stat(digest) is None
        state = await upload(blob_store, "u1", data[:1000], data[1000:])
        assert await collect(blob_store.read_upload("u1", state)) == data
        await blob_store.commit_upload("u1", state, digest)
        assert await blob_store.stat(digest) == len(data)
        assert await collect(blob_store.read(digest)) == data
        assert await collect(blob_store.read(digest, 5, 10)) == data[5:10]
        assert await collect(blob_store.read(digest, len(data) - 4)) == b"tail"

    asyncio.run(scenario())


def test_no_partial_blob_before_commit(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        data = b"partial"
        state = await upload(blob_store, "u2", data)
        assert await blob_store.stat(digest_of(data)) is None
        await blob_store.abort_upload("u2", state)
        await blob_store.abort_upload("u2", state)  # idempotent
        assert await blob_store.stat(digest_of(data)) is None

    asyncio.run(scenario())


def test_reopening_at_an_offset_discards_bytes_after_it(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        state = await upload(blob_store, "u3", b"hello world")
        # a chunk that broke off is rewritten from the offset the row recorded
        writer = await blob_store.open_upload("u3", state, 5)
        await writer.write(b"!")
        state = await writer.close()
        assert await collect(blob_store.read_upload("u3", state)) == b"hello!"

    asyncio.run(scenario())


def test_committing_an_existing_blob_keeps_it(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        data = b"same bytes"
        digest = digest_of(data)
        for upload_id in ("u4", "u5"):
            state = await upload(blob_store, upload_id, data)
            await blob_store.commit_upload(upload_id, state, digest)
        assert await collect(blob_store.read(digest)) == data
        await blob_store.delete(digest)
        await blob_store.delete(digest)
        assert await blob_store.stat(digest) is None

    asyncio.run(scenario())


def test_filesystem_refuses_path_tricks(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)

    async def scenario() -> None:
        with pytest.raises(ValueError):
            await store.start_upload("../escape")
        with pytest.raises(Exception, match="invalid digest"):
            await store.stat("sha256:../../etc/passwd")

    asyncio.run(scenario())
    assert not (tmp_path.parent / "escape").exists()
