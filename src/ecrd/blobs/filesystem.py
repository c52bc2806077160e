"""Filesystem blob store.

Layout under the root folder; paths are built only in this module:

    <root>/blobs/<algorithm>/<first two hex digits>/<hex>   committed blobs, immutable
    <root>/uploads/<upload id>                             bytes of an upload in progress

An upload becomes a blob by an atomic rename within one filesystem, so a blob path holds either
nothing or the complete, verified bytes. Disk work runs in worker threads, in 1 MiB pieces.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from ecrd.digests import Digest

READ_CHUNK = 1024 * 1024
_UPLOAD_ID = re.compile(r"^[a-zA-Z0-9-]{1,64}$")


class FilesystemUploadWriter:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    async def write(self, data: bytes) -> None:
        await to_thread.run_sync(self._file.write, data)

    async def close(self) -> str:
        await to_thread.run_sync(self._file.close)
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
        if _UPLOAD_ID.match(upload_id) is None:
            raise ValueError(f"invalid upload id {upload_id!r}")
        return self._uploads / upload_id

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

    async def redirect_url(self, digest: str) -> str | None:
        return None

    async def start_upload(self, upload_id: str) -> str:
        path = self._upload_path(upload_id)
        await to_thread.run_sync(path.touch)
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
            file = await to_thread.run_sync(open_at_offset)
        except FileNotFoundError:
            # The row outlived its bytes (a crash between the two); start the bytes again.
            await to_thread.run_sync(path.touch)
            file = await to_thread.run_sync(open_at_offset)
        return FilesystemUploadWriter(file)

    async def read_upload(self, upload_id: str, driver_state: str) -> AsyncIterator[bytes]:
        async for chunk in _read_file(self._upload_path(upload_id), 0, None):
            yield chunk

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

        await to_thread.run_sync(move_into_place)

    async def abort_upload(self, upload_id: str, driver_state: str) -> None:
        await to_thread.run_sync(_unlink_quietly, self._upload_path(upload_id))


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


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
