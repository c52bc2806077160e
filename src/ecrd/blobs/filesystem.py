"""Filesystem blob store.

Layout under the root folder; paths are built only in this module:

    <root>/blobs/<algorithm>/<first two hex digits>/<hex>   committed blobs, immutable
    <root>/uploads/<upload id>                             bytes of an upload in progress

An upload becomes a blob by an atomic rename within one filesystem, so a blob path holds either
nothing or the complete, verified bytes. Disk work runs in worker threads, in 1 MiB pieces.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from anyio import to_thread

from ecrd.blobs.store import UploadBytesMissing
from ecrd.digests import Digest
from ecrd.errors import StorageFull

READ_CHUNK = 1024 * 1024
_UPLOAD_ID = re.compile(r"[a-zA-Z0-9-]{1,64}")
# What the kernel says when a write cannot get room: no space, a quota, a file size limit.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
Result = TypeVar("Result")


@contextmanager
def _room_needed() -> Iterator[None]:
    """Turn "the disk is full" into StorageFull, naming the cause."""
    try:
        yield
    except OSError as error:
        if error.errno in _NO_ROOM:
            raise StorageFull(f"insufficient storage for blobs: {error.strerror}") from None
        raise


async def _writing(function: Callable[[], Result]) -> Result:
    """Run a disk write in a worker thread; a full disk is StorageFull."""
    with _room_needed():
        return await to_thread.run_sync(function)


class FilesystemUploadWriter:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    async def write(self, data: bytes) -> None:
        await _writing(lambda: self._file.write(data))

    async def close(self) -> str:
        try:
            # Buffered bytes are written here: this too can find the disk full.
            await _writing(self._file.close)
        finally:
            if not self._file.closed:
                await to_thread.run_sync(_close_quietly, self._file)
        return "{}"


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)

    def _blob_path(self, digest: str) -> Path:
        parsed = Digest.parse(digest)
        return self._blobs / parsed.algorithm / parsed.hex[:2] / parsed.hex

    def _upload_path(self, upload_id: str) -> Path:
        if _UPLOAD_ID.fullmatch(upload_id) is None:
            raise ValueError(f"invalid upload id {upload_id!r}")
        return self._uploads / upload_id

    def close(self) -> None:
        pass  # files are opened and closed by each call

    async def check(self) -> None:
        # A digest no blob has: a working folder answers "no such file", a broken one
        # (replaced, unmounted, unreadable) raises.
        await self.stat("sha256:" + "0" * 64)

    async def stat(self, digest: str) -> int | None:
        try:
            return (await to_thread.run_sync(os.stat, self._blob_path(digest))).st_size
        except FileNotFoundError:
            return None

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        async for chunk in _read_file(self._blob_path(digest), start, end):
            yield chunk

    async def delete(self, digest: str) -> None:
        await to_thread.run_sync(_unlink_quietly, self._blob_path(digest))

    async def download_url(self, digest: str) -> str | None:
        return None

    async def start_upload(self, upload_id: str) -> str:
        path = self._upload_path(upload_id)
        await _writing(path.touch)
        return "{}"

    async def open_upload(
        self, upload_id: str, driver_state: str, offset: int
    ) -> FilesystemUploadWriter:
        path = self._upload_path(upload_id)

        def open_at_offset() -> BinaryIO:
            file = open(path, "r+b")  # noqa: SIM115 - closed by the writer
            file.truncate(offset)
            file.seek(offset)
            return file

        try:
            file = await _writing(open_at_offset)
        except FileNotFoundError:
            if offset:
                raise UploadBytesMissing(upload_id) from None
            # An empty upload whose file went (a crash between row and file): start it again.
            await _writing(path.touch)
            file = await _writing(open_at_offset)
        return FilesystemUploadWriter(file)

    async def read_upload(self, upload_id: str, driver_state: str) -> AsyncIterator[bytes]:
        try:
            chunks = _read_file(self._upload_path(upload_id), 0, None)
            async for chunk in chunks:
                yield chunk
        except FileNotFoundError:
            raise UploadBytesMissing(upload_id) from None

    async def commit_upload(self, upload_id: str, driver_state: str, digest: str) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)

        def move_into_place() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                # Same digest, same bytes: the stored copy stands.
                source.unlink()
            else:
                os.replace(source, target)

        try:
            await _writing(move_into_place)
        except FileNotFoundError:
            raise UploadBytesMissing(upload_id) from None

    async def abort_upload(self, upload_id: str, driver_state: str) -> None:
        await to_thread.run_sync(_unlink_quietly, self._upload_path(upload_id))

    async def stored_uploads(self, written_before: datetime, limit: int) -> list[str]:
        cutoff = written_before.timestamp()

        def untouched() -> list[str]:
            found: list[str] = []
            with os.scandir(self._uploads) as entries:
                for entry in entries:
                    if len(found) >= limit:
                        break
                    try:
                        if _UPLOAD_ID.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
                            found.append(entry.name)
                    except FileNotFoundError:  # removed while listed
                        continue
            return found

        return await to_thread.run_sync(untouched)


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def _close_quietly(file: BinaryIO) -> None:
    """Release the descriptor after a failed close (whatever was buffered is lost anyway)."""
    try:
        file.close()
    except OSError:
        os.close(file.fileno())


async def _read_file(path: Path, start: int, end: int | None) -> AsyncIterator[bytes]:
    """Stream [start, end) of a file, reading the next piece while the caller sends this one."""
    file = await to_thread.run_sync(open, path, "rb")
    pending: asyncio.Future[bytes] | None = None
    try:
        if start:
            await to_thread.run_sync(file.seek, start)
        remaining = None if end is None else end - start

        def read_next() -> asyncio.Future[bytes] | None:
            nonlocal remaining
            if remaining is not None and remaining <= 0:
                return None
            size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            if remaining is not None:
                remaining -= size
            return asyncio.ensure_future(to_thread.run_sync(file.read, size))

        pending = read_next()
        while pending is not None:
            chunk = await pending
            pending = None
            if not chunk:
                break
            pending = read_next()
            yield chunk
    finally:
        if pending is not None:
            # The file must outlive a read still running in its thread.
            await asyncio.wait([pending])
        await to_thread.run_sync(file.close)
