"""Blob uploads, shared by the OCI upload endpoints and ECR's layer-part operations.

The upload row holds the offset and driver state, so any process continues any upload. The
running sha256 lives in this process's memory keyed by (upload, offset); a process without it,
or a digest in another algorithm, hashes the stored bytes again when the upload closes. Bytes
are gathered into 1 MiB pieces; each piece is written and hashed in worker threads at once,
while the next piece arrives.

An upload that cannot go on leaves nothing behind: a full disk drops its bytes and row at once,
and a write that finds its row gone (cancelled, or its repository deleted meanwhile) drops the
bytes it wrote. A cancel or the sweep drops the bytes before the row, so that a failure
between the two leaves a row without bytes (which answers "unknown" and is swept again),
never bytes no row names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from anyio import to_thread

from ecrd.blobs.store import BlobStore, UploadBytesMissing, UploadWriter
from ecrd.digests import Digest, Hasher, new_hasher
from ecrd.errors import (
    BlobBusy,
    DigestInvalid,
    DigestMismatch,
    RepositoryDeleted,
    SizeInvalid,
    StorageFull,
    TooManyUploads,
    UploadNotFound,
    UploadOutOfOrder,
)
from ecrd.metadata.blobs import BlobBeingCollected, BlobRecords
from ecrd.metadata.records import Blob, Registry, Repository, Upload, utcnow
from ecrd.metadata.uploads import UploadStore

PIECE_SIZE = 1024 * 1024
MAX_REMEMBERED_HASHERS = 1024
# How long a finishing upload waits for the garbage collector to delete an older copy of the
# same blob (it takes a moment), and how many times it commits meanwhile at most.
BLOB_BUSY_WAIT_SECONDS = 10.0
MAX_COMMIT_ATTEMPTS = 40
logger = logging.getLogger("ecrd")


class BodyInterrupted(Exception):
    """The client went away mid-body; what arrived before is kept and the offset advanced."""


@dataclass
class _RunningHash:
    offset: int
    hasher: Hasher


class UploadService:
    def __init__(
        self,
        uploads: UploadStore,
        blob_records: BlobRecords,
        blob_store: BlobStore,
        max_open_per_registry: int,
    ) -> None:
        self._uploads = uploads
        self._max_open_per_registry = max_open_per_registry
        self._blob_records = blob_records
        self._blob_store = blob_store
        self._hashes: OrderedDict[str, _RunningHash] = OrderedDict()
        self._busy: set[str] = set()

    async def start(self, repository: Repository) -> Upload:
        """A new upload; TooManyUploads when the registry has its bound of open uploads."""
        upload_id = str(uuid.uuid4())
        driver_state = await self._blob_store.start_upload(upload_id)
        try:
            upload = await self._uploads.create(
                upload_id, repository, driver_state, self._max_open_per_registry
            )
        except BaseException:  # the repository went meanwhile, or the disk is full
            await self._blob_store.abort_upload(upload_id, driver_state)
            raise
        if upload is None:
            await self._blob_store.abort_upload(upload_id, driver_state)
            raise self._too_many()
        self._hashes[upload_id] = _RunningHash(0, new_hasher())
        self._forget_oldest()
        return upload

    async def check_room(self, registry: Registry) -> None:
        """TooManyUploads when the registry has its bound of open uploads already: checked
        before a push creates its repository, so that a refused one creates nothing. (`start`
        checks again, in the transaction that adds the upload.)"""
        if not registry.is_stored:
            return
        limit = self._max_open_per_registry
        if await self._uploads.open_in_registry(registry.id, limit) >= limit:
            raise self._too_many()

    def _too_many(self) -> TooManyUploads:
        return TooManyUploads(
            f"the registry has {self._max_open_per_registry} uploads open, the most it "
            "allows (max_open_uploads): finish or cancel some, or wait for abandoned ones to "
            "expire"
        )

    async def open_count(self) -> int:
        """Uploads open in every registry (the operator's metric)."""
        return await self._uploads.count()

    async def get(self, repository: Repository, upload_id: str) -> Upload:
        upload = await self._uploads.get(repository.id, upload_id)
        if upload is None:
            await self._raise_gone(repository.id, upload_id)
        return upload

    async def _raise_gone(self, repository_id: int, upload_id: str) -> NoReturn:
        """An upload that is not there: because its repository was deleted, or unknown."""
        if not await self._uploads.repository_exists(repository_id):
            raise RepositoryDeleted()
        raise UploadNotFound(f"upload {upload_id[:100]!r} is unknown")

    async def append(
        self,
        repository: Repository,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> Upload:
        """Append a chunk; `start`, when given, must equal the current offset.

        If the body breaks off, the bytes that arrived are kept, the offset moves past them,
        and BodyInterrupted is raised so the client can resume from the reported offset.
        """
        upload = await self.get(repository, upload_id)
        if start is not None and start != upload.offset:
            raise UploadOutOfOrder(
                f"chunk starts at {start} but the upload is at {upload.offset}", upload.offset
            )
        if upload_id in self._busy:
            raise UploadOutOfOrder("another chunk of this upload is being written", upload.offset)
        self._busy.add(upload_id)
        try:
            return await self._append(upload, body, length)
        finally:
            self._busy.discard(upload_id)

    async def _append(
        self, upload: Upload, body: AsyncIterator[bytes], length: int | None
    ) -> Upload:
        running = self._hashes.pop(upload.id, None)
        hasher = running.hasher if running is not None and running.offset == upload.offset else None
        try:
            writer = await self._blob_store.open_upload(
                upload.id, upload.driver_state_json, upload.offset
            )
            try:
                written, interrupted = await _copy(body, writer, hasher)
            finally:
                driver_state = await writer.close()
        except StorageFull:
            await self._remove(upload)
            raise
        except UploadBytesMissing:
            await self._raise_gone_after_write(upload)
        new_offset = upload.offset + written
        if not await self._uploads.advance(upload.id, upload.offset, new_offset, driver_state):
            if await self._uploads.get(upload.repository_id, upload.id) is None:
                await self._raise_gone_after_write(upload)
            raise UploadOutOfOrder("the upload moved on while this chunk was written", new_offset)
        if hasher is not None:
            self._hashes[upload.id] = _RunningHash(new_offset, hasher)
            self._forget_oldest()
        if interrupted:
            raise BodyInterrupted(f"body ended after {written} bytes")
        if length is not None and written != length:
            raise SizeInvalid(f"Content-Length was {length} but {written} bytes arrived")
        return dataclasses.replace(
            upload, offset=new_offset, driver_state_json=driver_state, updated_at=utcnow()
        )

    async def finish(
        self, repository: Repository, upload_id: str, digest: str, upload: Upload | None = None
    ) -> Blob:
        """Verify the bytes against `digest` and make them a blob of the repository.

        `upload` is the state an append just returned, which spares reading it again. A wrong
        digest cancels the upload, as CNCF Distribution does, so nothing is left over.
        """
        if upload is None or upload.id != upload_id:
            upload = await self.get(repository, upload_id)
        try:
            expected = Digest.parse(digest)
        except DigestInvalid:
            await self.cancel(repository, upload_id)
            raise
        try:
            actual = await self._digest_of(upload, expected.algorithm)
        except UploadBytesMissing:
            await self._raise_gone(repository.id, upload_id)
        if actual != expected:
            await self.cancel(repository, upload_id)
            raise DigestMismatch(f"upload has digest {actual}, not {expected}")
        blob = await self._commit_and_record(repository, upload, str(expected))
        self._hashes.pop(upload.id, None)
        try:
            await self._blob_store.abort_upload(upload.id, upload.driver_state_json)
        except Exception:  # the blob is recorded; the sweep drops what is left of the upload
            logger.warning("cannot drop the bytes of finished upload %s", upload.id, exc_info=True)
        return blob

    async def _commit_and_record(self, repository: Repository, upload: Upload, digest: str) -> Blob:
        """Put the upload's bytes in place as blob `digest` and record it, linked to the
        repository. While the garbage collector deletes an older copy of the same blob, wait
        for it and commit again: the collector may have taken the bytes this commit found in
        place. BlobBusy when it does not finish within BLOB_BUSY_WAIT_SECONDS."""
        deadline = time.monotonic() + BLOB_BUSY_WAIT_SECONDS
        pause = 0.05
        for _attempt in range(MAX_COMMIT_ATTEMPTS):
            try:
                await self._blob_store.commit_upload(upload.id, upload.driver_state_json, digest)
            except StorageFull:
                await self._remove(upload)
                raise
            except UploadBytesMissing:
                await self._raise_gone(repository.id, upload.id)
            try:
                blob, fresh = await self._blob_records.add_and_link(
                    repository.id, digest, upload.offset, finished_upload_id=upload.id
                )
            except BlobBeingCollected:
                if time.monotonic() + pause > deadline:
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
                continue
            except RepositoryDeleted:
                # The upload's row went with the repository: nothing can commit it again.
                await asyncio.shield(self._forget_bytes(upload))
                raise
            if fresh:
                # The commit may have found an older copy in place that the collector then
                # deleted with its row; now linked, the blob is safe from any collector, so
                # this commit's bytes stay.
                await self._blob_store.commit_upload(upload.id, upload.driver_state_json, digest)
            return blob
        raise BlobBusy(
            f"blob {digest} is being garbage collected (an older copy of it): retry the "
            "upload's last request in a few seconds"
        )

    async def cancel(self, repository: Repository, upload_id: str) -> None:
        upload = await self.get(repository, upload_id)
        await asyncio.shield(self._remove(upload))

    async def _remove(self, upload: Upload) -> bool:
        """Bytes first, then the row: a failure in between leaves a row without bytes, which
        answers "upload unknown" and the sweep removes, never bytes that no row names (and on
        a full disk, dropping the bytes frees the room the row's deletion needs). Cancel and
        the sweep run it shielded, so that a cancelled caller (a client gone, a job cut off)
        cannot stop it between the two. True when this call deleted the row."""
        await self._forget_bytes(upload)
        return await self._uploads.delete(upload.id)

    async def _raise_gone_after_write(self, upload: Upload) -> NoReturn:
        """The row went while bytes were being written (a cancel, or the repository deleted):
        drop what this write left, then say why."""
        await self._forget_bytes(upload)
        await self._raise_gone(upload.repository_id, upload.id)

    async def _forget_bytes(self, upload: Upload) -> None:
        """Drop an upload's bytes and its running hash (the row is the caller's)."""
        await self._blob_store.abort_upload(upload.id, upload.driver_state_json)
        self._hashes.pop(upload.id, None)

    async def expire(self, older_than_seconds: int, limit: int = 1000) -> int:
        """Remove uploads untouched for `older_than_seconds`; return how many went."""
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        removed = 0
        for upload in await self._uploads.stale(cutoff, limit):
            try:
                # Several processes sweeping at once may each drop the bytes (no error when
                # they are gone); one of them deletes the row and counts it.
                removed += await asyncio.shield(self._remove(upload))
            except Exception:  # whatever the store raised: the rest are still swept
                # The row is still there (bytes go first), so the next sweep tries it again.
                logger.warning("cannot remove abandoned upload %s", upload.id, exc_info=True)
        return removed

    async def collect_orphans(self, older_than_seconds: int, limit: int = 1000) -> int:
        """Drop upload bytes that no upload row names and that nothing wrote for
        `older_than_seconds`: what a process killed mid-append, or between writing a chunk
        and recording it, left behind. Return how many uploads' bytes went."""
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        stored = await self._blob_store.stored_uploads(cutoff, limit)
        # Rows are read after the listing: an upload whose row went meanwhile is an orphan
        # too, and one made meanwhile wrote its bytes after the cutoff.
        named = await self._uploads.existing(stored)
        removed = 0
        for upload_id in stored:
            if upload_id in named:
                continue
            try:
                await self._blob_store.abort_upload(upload_id, "{}")
                removed += 1
            except Exception:  # whatever the store raised: the next sweep tries again
                logger.warning("cannot remove orphaned upload bytes %s", upload_id, exc_info=True)
        return removed

    async def _digest_of(self, upload: Upload, algorithm: str) -> Digest:
        running = self._hashes.get(upload.id)
        if algorithm == "sha256" and running is not None and running.offset == upload.offset:
            return Digest(algorithm, running.hasher.hexdigest())
        hasher = new_hasher(algorithm)
        async for chunk in self._blob_store.read_upload(upload.id, upload.driver_state_json):
            await _hash_piece(hasher, chunk)
        return Digest(algorithm, hasher.hexdigest())

    def _forget_oldest(self) -> None:
        while len(self._hashes) > MAX_REMEMBERED_HASHERS:
            self._hashes.popitem(last=False)


# Pieces this size or more are hashed in a worker thread (hashlib lets go of the GIL for large
# buffers, so the thread really hashes in parallel). A smaller one is hashed in place: 256 KiB
# takes ~170 µs here, and the hop to a thread and back costs ~130 µs of CPU by itself.
THREAD_HASH_SIZE = 256 * 1024


async def _hash_piece(hasher: Hasher, piece: bytes) -> None:
    if len(piece) >= THREAD_HASH_SIZE:
        await to_thread.run_sync(hasher.update, piece)
    else:
        hasher.update(piece)


async def _copy(
    body: AsyncIterator[bytes], writer: UploadWriter, hasher: Hasher | None
) -> tuple[int, bool]:
    """Copy `body` into `writer` in pieces; return (bytes written, whether the body broke off)."""
    written = 0
    pending: list[bytes] = []
    pending_size = 0
    in_flight: asyncio.Future[None] | None = None

    async def store(piece: bytes) -> None:
        if hasher is None:
            await writer.write(piece)
        else:
            await asyncio.gather(writer.write(piece), _hash_piece(hasher, piece))

    async def flush() -> None:
        nonlocal pending_size, in_flight, written
        if not pending_size:
            return
        piece = b"".join(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        if in_flight is not None:
            await in_flight
        written += pending_size
        pending_size = 0
        in_flight = asyncio.ensure_future(store(piece))

    interrupted = False
    try:
        async for chunk in body:
            if chunk:
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= PIECE_SIZE:
                    await flush()
    except BodyInterrupted:
        interrupted = True
    await flush()
    if in_flight is not None:
        await in_flight
    return written, interrupted
