"""The BlobStore contract, run against every implementation: the filesystem driver, and the S3
driver against a real S3-protocol server process (moto, one for the session, a fresh bucket
for each test). Then what only the S3 driver promises: nothing left in the bucket after a
commit or an abort, no blob key before the commit, keys under the prefix.

Every blob a test commits is read back and checked against its digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from ecrd.blobs.filesystem import FilesystemBlobStore
from ecrd.blobs.s3 import S3BlobStore, _part_size, _room_needed
from ecrd.blobs.store import BlobStore, UploadBytesMissing
from ecrd.errors import DigestInvalid, StorageFull, UploadTooFragmented
from ecrd.metadata.records import utcnow
from tests.s3_server import S3Server, multipart_uploads, object_keys

pytestmark = pytest.mark.metadata_independent

KiB = 1024
MiB = 1024 * 1024
# How the upload service hands bytes to a writer.
WRITE_SIZE = MiB
S3_PREFIX = "ecrd/"
PART_WAIT_SECONDS = 10

# A new store object over the same storage each call, as another process would have.
StoreMaker = Callable[[], BlobStore]


@pytest.fixture(params=["filesystem", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    if request.param == "filesystem":
        yield lambda: FilesystemBlobStore(tmp_path / "store")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    made: list[S3BlobStore] = []

    def make() -> BlobStore:
        store = S3BlobStore(bucket, prefix=S3_PREFIX, endpoint_url=server.endpoint_url)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def blob_store(make_store: StoreMaker) -> BlobStore:
    return make_store()


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def append(store: BlobStore, upload_id: str, state: str, offset: int, data: bytes) -> str:
    """One append (what one PATCH does), in the service's 1 MiB writes; the new state."""
    writer = await store.open_upload(upload_id, state, offset)
    for start in range(0, len(data), WRITE_SIZE):
        await writer.write(data[start : start + WRITE_SIZE])
    return await writer.close()


async def upload(store: BlobStore, upload_id: str, *pieces: bytes) -> str:
    state = await store.start_upload(upload_id)
    offset = 0
    for piece in pieces:
        state = await append(store, upload_id, state, offset, piece)
        offset += len(piece)
    return state


async def assert_stored(store: BlobStore, data: bytes) -> None:
    """The blob of `data` is stored whole, and its bytes hash to its digest."""
    digest = digest_of(data)
    assert await store.stat(digest) == len(data)
    stored = await collect(store.read(digest))
    assert digest_of(stored) == digest
    assert stored == data


async def upload_and_commit(store: BlobStore, upload_id: str, *pieces: bytes) -> bytes:
    data = b"".join(pieces)
    state = await upload(store, upload_id, *pieces)
    assert await collect(store.read_upload(upload_id, state)) == data
    await store.commit_upload(upload_id, state, digest_of(data))
    # as the upload service does once the blob is recorded
    await store.abort_upload(upload_id, state)
    await assert_stored(store, data)
    return data


def test_upload_commit_read(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        data = b"x" * 3_000_000 + b"tail"
        digest = digest_of(data)
        # given an upload in two appends, when committed, then the blob reads back whole
        assert await blob_store.stat(digest) is None
        state = await upload(blob_store, "u1", data[:1000], data[1000:])
        assert await collect(blob_store.read_upload("u1", state)) == data
        await blob_store.commit_upload("u1", state, digest)
        await assert_stored(blob_store, data)
        assert await collect(blob_store.read(digest, 5, 10)) == data[5:10]
        assert await collect(blob_store.read(digest, len(data) - 4)) == b"tail"

    asyncio.run(scenario())


APPEND_SHAPES = {
    "7 appends of 1.3 MiB": [1_300_000] * 7,
    "100 appends of 1 KiB": [KiB] * 100,
    "one append past the part size": [20 * MiB],
    "small, big, small": [KiB, 12 * MiB, 3 * MiB],
    "two big": [6 * MiB, 6 * MiB],
    "small then big with a small rest": [KiB, 12 * MiB],
    "small, big with a big rest, small": [KiB, 16 * MiB, KiB],
}


@pytest.mark.parametrize("sizes", APPEND_SHAPES.values(), ids=APPEND_SHAPES.keys())
def test_appends_of_every_shape_commit_to_their_bytes(
    blob_store: BlobStore, sizes: list[int]
) -> None:
    pieces = [data_of(size, seed) for seed, size in enumerate(sizes)]
    asyncio.run(upload_and_commit(blob_store, "shapes", *pieces))


def test_an_empty_blob_and_empty_appends(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        # an append of nothing leaves the upload as it was
        state = await blob_store.start_upload("empty")
        writer = await blob_store.open_upload("empty", state, 0)
        await writer.write(b"")
        state = await writer.close()
        state = await append(blob_store, "empty", state, 0, b"")
        assert await collect(blob_store.read_upload("empty", state)) == b""
        await blob_store.commit_upload("empty", state, digest_of(b""))
        await assert_stored(blob_store, b"")

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
        # reopened inside an append and closed with nothing more, it is that append's start
        writer = await blob_store.open_upload("u3", state, 3)
        state = await writer.close()
        assert await collect(blob_store.read_upload("u3", state)) == b"hel"
        await blob_store.commit_upload("u3", state, digest_of(b"hel"))
        await assert_stored(blob_store, b"hel")

    asyncio.run(scenario())


def test_reopening_at_an_earlier_append_discards_the_later_ones(blob_store: BlobStore) -> None:
    first, second, third = data_of(KiB, 1), data_of(2 * KiB, 2), data_of(6 * MiB, 3)
    replacement = data_of(3 * KiB, 4)

    async def scenario() -> None:
        state = await upload(blob_store, "u6", first, second, third)
        state = await append(blob_store, "u6", state, len(first), replacement)
        assert await collect(blob_store.read_upload("u6", state)) == first + replacement
        # and inside an append, past the part size: its start stays, the rest is new
        state = await append(blob_store, "u6", state, len(first) + KiB, third)
        data = first + replacement[:KiB] + third
        assert await collect(blob_store.read_upload("u6", state)) == data
        await blob_store.commit_upload("u6", state, digest_of(data))
        await assert_stored(blob_store, data)
        assert await blob_store.stat(digest_of(first + second + third)) is None

    asyncio.run(scenario())


def test_committing_an_existing_blob_keeps_it(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        data = b"same bytes"
        digest = digest_of(data)
        for upload_id in ("u4", "u5"):
            state = await upload(blob_store, upload_id, data)
            await blob_store.commit_upload(upload_id, state, digest)
            await blob_store.abort_upload(upload_id, state)
            # the upload is gone once dropped, whether its bytes were used or not
            with pytest.raises(UploadBytesMissing):
                await collect(blob_store.read_upload(upload_id, state))
        await assert_stored(blob_store, data)
        await blob_store.delete(digest)
        await blob_store.delete(digest)
        assert await blob_store.stat(digest) is None

    asyncio.run(scenario())


def test_another_store_object_continues_and_commits_an_upload(make_store: StoreMaker) -> None:
    first, second = data_of(3 * MiB, 1), data_of(9 * MiB, 2)

    async def scenario() -> None:
        # each store object stands for another process: only the row's state and offset pass
        state = await upload(make_store(), "moved", first)
        state = await append(make_store(), "moved", state, len(first), second)
        assert await collect(make_store().read_upload("moved", state)) == first + second
        await make_store().commit_upload("moved", state, digest_of(first + second))
        await assert_stored(make_store(), first + second)

    asyncio.run(scenario())


def test_read_ranges(blob_store: BlobStore) -> None:
    data = data_of(2 * MiB + 17, 5)
    digest = digest_of(data)
    size = len(data)
    ranges = {
        "start": (0, 10),
        "middle": (MiB - 3, MiB + 5),
        "end": (size - 7, size),
        "whole": (0, size),
        "from an offset to the end": (MiB + 1, None),
        "empty": (100, 100),
        "past the end": (size, None),
    }

    async def scenario() -> None:
        await upload_and_commit(blob_store, "ranges", data)
        for name, (start, end) in ranges.items():
            stored = await collect(blob_store.read(digest, start, end))
            assert stored == data[start:end], name

    asyncio.run(scenario())


def test_an_aborted_upload_is_gone(blob_store: BlobStore) -> None:
    data = b"to be cancelled"

    async def scenario() -> None:
        state = await upload(blob_store, "gone", data)
        await blob_store.abort_upload("gone", state)
        with pytest.raises(UploadBytesMissing):
            await append(blob_store, "gone", state, len(data), b"more")
        with pytest.raises(UploadBytesMissing):
            await collect(blob_store.read_upload("gone", state))
        with pytest.raises(UploadBytesMissing):
            await blob_store.commit_upload("gone", state, digest_of(data))
        assert await blob_store.stat(digest_of(data)) is None

    asyncio.run(scenario())


def test_a_commit_can_be_repeated_until_the_upload_is_dropped(blob_store: BlobStore) -> None:
    data = data_of(3 * MiB, 7)
    digest = digest_of(data)

    async def scenario() -> None:
        state = await upload(blob_store, "again", data[:MiB], data[MiB:])
        await blob_store.commit_upload("again", state, digest)
        await assert_stored(blob_store, data)
        # (a finish tried again reads the committed upload's bytes to hash them)
        assert await collect(blob_store.read_upload("again", state)) == data
        # given the blob deleted after the commit (the collector took an older copy), when
        # committed again, then the upload's bytes are put back
        await blob_store.delete(digest)
        assert await blob_store.stat(digest) is None
        await blob_store.commit_upload("again", state, digest)
        await assert_stored(blob_store, data)
        # and once the upload is dropped, the blob stays and the upload cannot commit again
        await blob_store.abort_upload("again", state)
        await assert_stored(blob_store, data)
        await blob_store.delete(digest)
        with pytest.raises(UploadBytesMissing):
            await blob_store.commit_upload("again", state, digest)
        assert await blob_store.stat(digest) is None
        # and nothing of the upload is left to sweep
        assert "again" not in await blob_store.stored_uploads(utcnow() + timedelta(hours=1), 10)

    asyncio.run(scenario())


def test_a_committed_upload_takes_no_more_appends_on_the_filesystem(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = b"committed bytes"

    async def scenario() -> None:
        state = await upload(store, "closed", data)
        await store.commit_upload("closed", state, digest_of(data))
        # an append that arrives after the commit (its row not yet gone) must not write into
        # the blob, which shares the upload's bytes
        with pytest.raises(UploadBytesMissing):
            await append(store, "closed", state, len(data), b"more")
        await assert_stored(store, data)

    asyncio.run(scenario())


def test_lists_committed_blobs_in_digest_order_by_pages(blob_store: BlobStore) -> None:
    blobs = [data_of(KiB * (n + 1), n) for n in range(5)]

    async def scenario() -> None:
        before = utcnow() - timedelta(seconds=5)
        for number, data in enumerate(blobs):
            await upload_and_commit(blob_store, f"listed-{number}", data)
        wanted = sorted(digest_of(data) for data in blobs)
        sizes = {digest_of(data): len(data) for data in blobs}
        # pages of two, each after the last digest of the one before, list all five in order
        listed = []
        after = None
        for _page in range(5):
            page = await blob_store.stored_blobs(after, 2)
            assert len(page) <= 2
            if not page:
                break
            listed.extend(page)
            after = page[-1].digest
        assert [blob.digest for blob in listed] == wanted
        assert all(blob.size == sizes[blob.digest] for blob in listed)
        assert all(before <= blob.written_at <= utcnow() + timedelta(seconds=5) for blob in listed)
        assert await blob_store.stored_blobs(wanted[-1], 10) == []
        # and a deleted blob is not listed any more
        await blob_store.delete(wanted[0])
        assert [blob.digest for blob in await blob_store.stored_blobs(None, 10)] == wanted[1:]

    asyncio.run(scenario())


def test_aborting_an_unknown_upload_is_fine(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        state = await blob_store.start_upload("never-written")
        await blob_store.abort_upload("never-written", state)
        await blob_store.abort_upload("unknown", state)
        assert await blob_store.stat(digest_of(b"")) is None

    asyncio.run(scenario())


def test_download_url(blob_store: BlobStore) -> None:
    data = data_of(300 * KiB, 6)

    async def scenario() -> str | None:
        await upload_and_commit(blob_store, "download", data)
        return await blob_store.download_url(digest_of(data))

    url = asyncio.run(scenario())
    if isinstance(blob_store, FilesystemBlobStore):
        assert url is None
        return
    assert url is not None
    # anyone may GET it: no credentials but the signature in the URL
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.content == data


def test_lists_the_uploads_it_holds_bytes_of_by_their_last_write(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        # given two uploads with bytes (one in a chunk past a part, one small) and one without
        await upload(blob_store, "first", data_of(6 * MiB, 1), data_of(KiB, 2))
        await upload(blob_store, "second", data_of(KiB, 3))
        await blob_store.start_upload("empty")
        later = utcnow() + timedelta(minutes=1)
        earlier = utcnow() - timedelta(hours=1)
        # then those written before a moment are listed, up to the limit, by id
        assert {"first", "second"} <= set(await blob_store.stored_uploads(later, 10))
        assert len(await blob_store.stored_uploads(later, 1)) == 1
        # and none written since an hour ago is listed as written before it
        assert await blob_store.stored_uploads(earlier, 10) == []
        # and an aborted upload is not listed any more
        await blob_store.abort_upload("first", "{}")
        assert "first" not in await blob_store.stored_uploads(later, 10)

    asyncio.run(scenario())


def test_refuses_path_tricks(blob_store: BlobStore) -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError):
            await blob_store.start_upload("../escape")
        with pytest.raises(ValueError):
            await blob_store.open_upload("../escape", "{}", 0)
        with pytest.raises(ValueError):
            await blob_store.abort_upload("a/b", "{}")
        with pytest.raises(DigestInvalid, match="invalid digest"):
            await blob_store.stat("sha256:../../etc/passwd")

    asyncio.run(scenario())


def test_filesystem_refuses_path_tricks(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)

    async def scenario() -> None:
        with pytest.raises(ValueError):
            await store.start_upload("../escape")

    asyncio.run(scenario())
    assert not (tmp_path.parent / "escape").exists()


# What only the S3 driver promises, seen in the bucket with boto3.


@pytest.fixture
def s3(s3_server: S3Server) -> Any:
    return s3_server.s3_client()


@pytest.fixture
def s3_store(s3_server: S3Server, s3_bucket: str) -> Iterator[S3BlobStore]:
    store = S3BlobStore(s3_bucket, prefix=S3_PREFIX, endpoint_url=s3_server.endpoint_url)
    yield store
    store.close()


def blob_key(data: bytes, prefix: str = S3_PREFIX) -> str:
    hex_digest = hashlib.sha256(data).hexdigest()
    return f"{prefix}blobs/sha256/{hex_digest[:2]}/{hex_digest}"


def chunk_key(s3: Any, bucket: str, upload_id: str, offset: int) -> str:
    """The key of the upload's chunk object that starts at `offset`."""
    start = f"{S3_PREFIX}uploads/{upload_id}/chunk-{offset}-"
    [key] = object_keys(s3, bucket, start)
    return key


async def wait_for_a_part(s3: Any, bucket: str, prefix: str) -> None:
    """Wait (bounded) until a multipart upload under `prefix` holds a part."""
    deadline = time.monotonic() + PART_WAIT_SECONDS
    while time.monotonic() < deadline:
        for multipart in multipart_uploads(s3, bucket, prefix):
            parts = s3.list_parts(
                Bucket=bucket, Key=multipart["Key"], UploadId=multipart["UploadId"]
            )
            if parts.get("Parts"):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no part reached the server in {PART_WAIT_SECONDS}s")


def test_s3_nothing_is_left_of_an_upload_after_commit_or_abort(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    pieces = [data_of(KiB, 1), data_of(12 * MiB, 2), data_of(2 * MiB, 3)]

    async def scenario() -> None:
        await upload_and_commit(s3_store, "committed", *pieces)
        state = await upload(s3_store, "aborted", *pieces)
        assert object_keys(s3, s3_bucket, f"{S3_PREFIX}uploads/aborted/")
        await s3_store.abort_upload("aborted", state)

    asyncio.run(scenario())
    for upload_id in ("committed", "aborted"):
        assert object_keys(s3, s3_bucket, f"{S3_PREFIX}uploads/{upload_id}/") == []
    assert multipart_uploads(s3, s3_bucket) == []
    assert object_keys(s3, s3_bucket) == [blob_key(b"".join(pieces))]


def test_s3_abort_removes_the_multipart_upload_of_an_append_that_never_closed(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    upload_prefix = f"{S3_PREFIX}uploads/crashed/"

    async def scenario() -> None:
        state = await upload(s3_store, "crashed", data_of(KiB))
        # a process that dies mid-append: 12 MiB written, the writer never closed
        writer = await s3_store.open_upload("crashed", state, KiB)
        for seed in range(12):
            await writer.write(data_of(MiB, seed))
        await wait_for_a_part(s3, s3_bucket, upload_prefix)
        del writer
        assert len(multipart_uploads(s3, s3_bucket, upload_prefix)) == 1
        await s3_store.abort_upload("crashed", state)

    asyncio.run(scenario())
    assert multipart_uploads(s3, s3_bucket) == []
    assert object_keys(s3, s3_bucket) == []


def test_s3_an_append_whose_upload_is_aborted_under_it_is_missing_bytes(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    async def scenario() -> None:
        state = await s3_store.start_upload("cancelled")
        # given an append past a part, whose multipart upload another process aborts (a
        # cancel, the sweep, the repository deleted) while it runs
        writer = await s3_store.open_upload("cancelled", state, 0)
        for seed in range(12):
            await writer.write(data_of(MiB, seed))
        await wait_for_a_part(s3, s3_bucket, f"{S3_PREFIX}uploads/cancelled/")
        await S3BlobStore(
            s3_bucket, prefix=S3_PREFIX, endpoint_url=s3_store_endpoint(s3)
        ).abort_upload("cancelled", state)
        # when the append ends, then it says the upload's bytes are gone (not an S3 error)
        with pytest.raises(UploadBytesMissing):
            for seed in range(12, 20):
                await writer.write(data_of(MiB, seed))
            await writer.close()

    asyncio.run(scenario())
    assert multipart_uploads(s3, s3_bucket) == []
    assert object_keys(s3, s3_bucket) == []


@pytest.mark.parametrize(
    "state",
    [
        "[]",
        '{"chunks": 3}',
        '{"chunks": [7]}',
        '{"chunks": [{"size": 3}]}',
        '{"chunks": [{"key": "chunk-0-ab\\n", "size": 3}]}',
        '{"chunks": [{"key": "../../blobs/x", "size": 3}]}',
        '{"chunks": [{"key": "chunk-0-ab", "size": -1}]}',
        "not json",
    ],
)
def test_s3_an_upload_state_it_did_not_write_is_missing_bytes(
    s3_store: S3BlobStore, state: str
) -> None:
    async def scenario() -> None:
        with pytest.raises(UploadBytesMissing):
            await s3_store.open_upload("damaged", state, 3)
        with pytest.raises(UploadBytesMissing):
            await collect(s3_store.read_upload("damaged", state))
        with pytest.raises(UploadBytesMissing):
            await s3_store.commit_upload("damaged", state, digest_of(b"abc"))

    asyncio.run(scenario())


def test_s3_an_upload_of_as_many_chunks_as_s3_can_join_takes_no_more(
    s3_store: S3BlobStore,
) -> None:
    # given an upload whose state lists 10,000 chunks (S3 joins at most 10,000 parts)
    chunks = [{"key": f"chunk-{offset}-ab", "size": 1} for offset in range(10_000)]
    state = json.dumps({"chunks": chunks})
    # when one more append is opened, then it is refused as a limit, not as an S3 failure
    with pytest.raises(UploadTooFragmented, match="10000 chunks"):
        asyncio.run(s3_store.open_upload("fragmented", state, 10_000))


def test_s3_an_upload_id_with_a_trailing_newline_is_refused(s3_store: S3BlobStore) -> None:
    with pytest.raises(ValueError):
        asyncio.run(s3_store.abort_upload("upload\n", "{}"))


def s3_store_endpoint(s3: Any) -> str:
    return str(s3.meta.endpoint_url)


def test_s3_the_blob_key_appears_only_at_commit(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    pieces = [data_of(6 * MiB, 1), data_of(KiB, 2), data_of(6 * MiB, 3)]
    data = b"".join(pieces)

    async def scenario() -> None:
        state = await upload(s3_store, "pending", *pieces)
        assert object_keys(s3, s3_bucket, f"{S3_PREFIX}blobs/") == []
        assert multipart_uploads(s3, s3_bucket, f"{S3_PREFIX}blobs/") == []
        with pytest.raises(ClientError, match="404"):
            s3.head_object(Bucket=s3_bucket, Key=blob_key(data))
        await s3_store.commit_upload("pending", state, digest_of(data))
        await assert_stored(s3_store, data)

    asyncio.run(scenario())
    assert s3.head_object(Bucket=s3_bucket, Key=blob_key(data))["ContentLength"] == len(data)


def test_s3_a_commit_that_fails_midway_leaves_no_parts(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    pieces = [data_of(6 * MiB, 1), data_of(KiB, 2), data_of(6 * MiB, 3)]
    data = b"".join(pieces)

    async def scenario() -> None:
        state = await upload(s3_store, "broken", *pieces)
        # the first chunk is copied as a part before the missing last one is found
        s3.delete_object(Bucket=s3_bucket, Key=chunk_key(s3, s3_bucket, "broken", 6 * MiB + KiB))
        with pytest.raises(UploadBytesMissing):
            await s3_store.commit_upload("broken", state, digest_of(data))
        assert await s3_store.stat(digest_of(data)) is None

    asyncio.run(scenario())
    assert multipart_uploads(s3, s3_bucket) == []


def test_s3_a_missing_chunk_is_missing_upload_bytes(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    async def scenario() -> None:
        state = await upload(s3_store, "holed", b"one", b"two", b"three")
        s3.delete_object(Bucket=s3_bucket, Key=chunk_key(s3, s3_bucket, "holed", 3))
        with pytest.raises(UploadBytesMissing):
            await collect(s3_store.read_upload("holed", state))

    asyncio.run(scenario())


def test_s3_an_offset_past_what_the_state_holds_is_missing_bytes(s3_store: S3BlobStore) -> None:
    async def scenario() -> None:
        state = await upload(s3_store, "offsets", b"abc", b"defg")
        for offset in (8, 100):
            with pytest.raises(UploadBytesMissing):
                await s3_store.open_upload("offsets", state, offset)
        # the empty state a filesystem row holds ("{}") is an empty upload here too
        writer = await s3_store.open_upload("fresh", "{}", 0)
        await writer.write(b"x")
        assert await collect(s3_store.read_upload("fresh", await writer.close())) == b"x"

    asyncio.run(scenario())


def test_s3_appends_racing_at_one_offset_keep_their_own_objects(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    async def scenario() -> None:
        state = await upload(s3_store, "raced", b"head-")
        # two processes append at the same offset; the row keeps one of them
        first = await s3_store.open_upload("raced", state, 5)
        second = await s3_store.open_upload("raced", state, 5)
        await first.write(b"first")
        await second.write(b"second")
        first_state, second_state = await first.close(), await second.close()
        assert await collect(s3_store.read_upload("raced", first_state)) == b"head-first"
        assert await collect(s3_store.read_upload("raced", second_state)) == b"head-second"
        await s3_store.commit_upload("raced", second_state, digest_of(b"head-second"))
        await s3_store.abort_upload("raced", second_state)
        await assert_stored(s3_store, b"head-second")

    asyncio.run(scenario())
    # the loser's object went with the upload
    assert object_keys(s3, s3_bucket) == [blob_key(b"head-second")]


def test_s3_keys_honour_the_prefix(s3_server: S3Server, s3_bucket: str, s3: Any) -> None:
    data = data_of(KiB, 1)
    store = S3BlobStore(s3_bucket, prefix="a/b", endpoint_url=s3_server.endpoint_url)
    other = S3BlobStore(s3_bucket, prefix="other/", endpoint_url=s3_server.endpoint_url)

    async def scenario() -> None:
        await upload_and_commit(store, "prefixed", data)
        state = await upload(store, "open", data_of(KiB, 2))
        writer = await store.open_upload("open", state, KiB)
        for seed in range(9):
            await writer.write(data_of(MiB, seed))
        await wait_for_a_part(s3, s3_bucket, "a/b/uploads/open/")
        del writer
        # a store under another prefix of the same bucket sees nothing of it
        assert await other.stat(digest_of(data)) is None

    try:
        asyncio.run(scenario())
        keys = object_keys(s3, s3_bucket)
        assert blob_key(data, "a/b/") in keys
        assert all(key.startswith("a/b/uploads/open/") for key in keys if "blobs/" not in key)
        assert all(key.startswith("a/b/") for key in keys)
        multipart_keys = [multipart["Key"] for multipart in multipart_uploads(s3, s3_bucket)]
        assert len(multipart_keys) == 1
        assert multipart_keys[0].startswith("a/b/uploads/open/chunk-1024-")
    finally:
        store.close()
        other.close()


def test_s3_answers_of_no_room_are_storage_full() -> None:
    for code, status in [("EntityTooLarge", 400), ("QuotaExceeded", 403), ("Whatever", 507)]:
        error = ClientError(
            {
                "Error": {"Code": code, "Message": "no"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "PutObject",
        )
        with pytest.raises(StorageFull, match="insufficient storage"), _room_needed():
            raise error
    # other failures are the operator's, and pass as they are
    other = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")
    with pytest.raises(ClientError, match="AccessDenied"), _room_needed():
        raise other


def test_s3_parts_grow_so_that_ten_thousand_hold_hundreds_of_gib() -> None:
    assert _part_size(1) == _part_size(1000) == 8 * MiB
    assert _part_size(1001) == 16 * MiB
    assert all(_part_size(number) >= 5 * MiB for number in range(1, 10_001))
    assert sum(_part_size(number) for number in range(1, 10_001)) >= 400 * 1024 * MiB


def test_s3_drops_commits_a_killed_process_left_half_assembled(
    s3_store: S3BlobStore, s3: Any, s3_bucket: str
) -> None:
    data = b"never finished"
    # given a multipart upload at a blob key, as a process killed mid-assembly leaves it
    s3.create_multipart_upload(Bucket=s3_bucket, Key=blob_key(data))

    async def scenario() -> tuple[int, int]:
        # (moto reports every multipart upload as initiated on 2010-11-10, so "recent" is a
        # moment before that)
        recent = await s3_store.abandoned_commits(datetime(2001, 1, 1, tzinfo=UTC))
        old = await s3_store.abandoned_commits(utcnow() + timedelta(minutes=1))
        return recent, old

    # then one started after the moment is left alone, and one started before it is aborted
    assert asyncio.run(scenario()) == (0, 1)
    assert multipart_uploads(s3, s3_bucket) == []


def test_deletes_blobs_in_batches(blob_store: BlobStore) -> None:
    blobs = [data_of(KiB, n) for n in range(3)]

    async def scenario() -> None:
        for number, data in enumerate(blobs):
            await upload_and_commit(blob_store, f"batch-{number}", data)
        kept = digest_of(blobs[2])
        gone = [digest_of(blobs[0]), digest_of(blobs[1]), digest_of(b"never stored")]
        # a missing blob is not a failure; the others go, and the one not named stays
        assert await blob_store.delete_many(gone) == []
        for digest in gone:
            assert await blob_store.stat(digest) is None
        await assert_stored(blob_store, blobs[2])
        assert [blob.digest for blob in await blob_store.stored_blobs(None, 10)] == [kept]
        assert await blob_store.delete_many([]) == []

    asyncio.run(scenario())


def test_stray_files_in_the_blob_folders_are_not_blobs(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = b"a real blob"

    async def scenario() -> list[str]:
        await upload_and_commit(store, "real", data)
        shard = tmp_path / "blobs" / "sha256" / digest_of(data)[7:9]
        # an editor's or NFS's leftovers beside it, and folders of no blob form
        (shard / ".nfs000123").write_bytes(b"x")
        (shard / (digest_of(data)[7:] + ".swp")).write_bytes(b"x")
        (tmp_path / "blobs" / "Not An Algorithm").mkdir()
        (tmp_path / "blobs" / "sha256" / "zz").mkdir()
        return [blob.digest for blob in await store.stored_blobs(None, 10)]

    assert asyncio.run(scenario()) == [digest_of(data)]
