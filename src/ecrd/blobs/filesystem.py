"""Filesystem blob store.

Layout under the root folder; paths are built only in this module:

    <root>/blobs/<algorithm>/<first two hex digits>/<hex>   committed blobs, immutable
    <root>/uploads/<upload id>                             bytes of an upload in progress
    <root>/uploads/<upload id>.committed                   the same bytes once committed,
                                                           until the upload is dropped

A commit renames the upload's file to `.committed` (no append can open it any more) and makes
the blob a hard link of it, atomically: a blob path holds either nothing or the complete,
verified bytes, and the upload's name still reaches them until it is dropped, so a commit can be
repeated. Where hard links are refused, the bytes are copied to `<upload id>.copying` and renamed
into place. Disk work runs in worker threads, in 1 MiB pieces.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from anyio import to_thread

from ecrd.blobs.store import StoredBlob, UploadBytesMissing
from ecrd.digests import Digest
from ecrd.errors import DigestInvalid, StorageFull

READ_CHUNK = 1024 * 1024
_UPLOAD_ID = re.compile(r"[a-zA-Z0-9-]{1,64}")
# The names an upload's bytes have in the uploads folder: while open, once committed, while
# copied into place.
_UPLOAD_FILE = re.compile(r"(?P<id>[a-zA-Z0-9-]{1,64})(\.committed|\.copying)?")
_COMMITTED = ".committed"
# The parts of a blob's path: <algorithm>/<first two hex digits>/<hex>.
_ALGORITHM = re.compile(r"[a-z0-9]{1,16}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_HEX = re.compile(r"[0-9a-f]{32,128}")
_COPYING = ".copying"
# What os.link raises on a filesystem without hard links (some FUSE and network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
# What the kernel says when a write cannot get room: no space, a quota, a file size limit.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
Result = TypeVar("Result")
logger = logging.getLogger("ecrd.blobs")


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
    """One append to an upload's file, from `offset` on.

    Each piece is written one call later than it is handed over: the file is opened by the
    first write, and the last piece goes with the close. A small body (one piece) is then one
    worker-thread hop, not three (a hop costs ~130 µs of CPU, more than the writes), and a
    large one still writes a piece while the next arrives.
    """

    def __init__(self, path: Path, upload_id: str, offset: int) -> None:
        self._path = path
        self._upload_id = upload_id
        self._offset = offset
        self._file: BinaryIO | None = None
        self._pending: bytes | None = None

    async def write(self, data: bytes) -> None:
        if not data:
            return
        pending, self._pending = self._pending, data
        if pending is not None:
            await _writing(lambda: self._write(pending))

    def _write(self, data: bytes) -> None:
        """In a worker thread: `data` at the end of what this append wrote so far."""
        if self._file is None:
            self._file = self._open()
        self._file.write(data)

    def _open(self) -> BinaryIO:
        try:
            # An empty upload whose file went (a crash between row and file) starts again.
            flags = os.O_RDWR | (os.O_CREAT if self._offset == 0 else 0)
            file = os.fdopen(os.open(self._path, flags, 0o644), "r+b")
        except FileNotFoundError:
            raise UploadBytesMissing(self._upload_id) from None
        try:
            file.truncate(self._offset)
            file.seek(self._offset)
        except BaseException:
            _close_quietly(file)
            raise
        return file

    async def close(self) -> str:
        pending, self._pending = self._pending, None

        def finish() -> None:
            try:
                if pending is not None:
                    self._write(pending)
                file = self._file
                if file is None:
                    # Nothing written: the file must still be there (or be made, at 0).
                    file = self._file = self._open()
                # Buffered bytes are written here: this too can find the disk full.
                file.close()
            finally:
                if self._file is not None and not self._file.closed:
                    _close_quietly(self._file)

        await _writing(finish)
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

    async def delete_many(self, digests: Sequence[str]) -> list[str]:
        def unlink_all() -> list[str]:
            failed = []
            for digest in digests:
                try:
                    self._blob_path(digest).unlink(missing_ok=True)
                except (OSError, DigestInvalid):
                    logger.warning("cannot delete blob %s", digest, exc_info=True)
                    failed.append(digest)
            return failed

        return await to_thread.run_sync(unlink_all)

    async def download_url(self, digest: str) -> str | None:
        return None

    async def start_upload(self, upload_id: str) -> str:
        path = self._upload_path(upload_id)
        await _writing(path.touch)
        return "{}"

    async def open_upload(
        self, upload_id: str, driver_state: str, offset: int
    ) -> FilesystemUploadWriter:
        return FilesystemUploadWriter(self._upload_path(upload_id), upload_id, offset)

    async def read_upload(self, upload_id: str, driver_state: str) -> AsyncIterator[bytes]:
        path = self._upload_path(upload_id)
        committed = path.with_name(path.name + _COMMITTED)
        # Committed already (a finish that failed after its commit, tried again): the same
        # bytes under their committed name.
        source = committed if await to_thread.run_sync(committed.exists) else path
        try:
            async for chunk in _read_file(source, 0, None):
                yield chunk
        except FileNotFoundError:
            raise UploadBytesMissing(upload_id) from None

    async def commit_upload(self, upload_id: str, driver_state: str, digest: str) -> None:
        source = self._upload_path(upload_id)
        committed = source.with_name(source.name + _COMMITTED)
        target = self._blob_path(digest)

        def put_in_place() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, committed)
            except FileNotFoundError:
                if not committed.exists():
                    raise
                # Committed before: put the same bytes back (the collector took the blob).
            try:
                os.link(committed, target)
            except FileExistsError:
                pass  # same digest, same bytes: the stored copy stands
            except OSError as error:
                if error.errno not in _NO_HARD_LINKS:
                    raise
                copying = source.with_name(source.name + _COPYING)
                shutil.copyfile(committed, copying)
                os.replace(copying, target)

        try:
            await _writing(put_in_place)
        except FileNotFoundError:
            raise UploadBytesMissing(upload_id) from None

    async def abort_upload(self, upload_id: str, driver_state: str) -> None:
        path = self._upload_path(upload_id)

        def drop() -> None:
            for name in (path.name, path.name + _COMMITTED, path.name + _COPYING):
                _unlink_quietly(path.with_name(name))

        await to_thread.run_sync(drop)

    async def stored_uploads(self, written_before: datetime, limit: int) -> list[str]:
        cutoff = written_before.timestamp()

        def untouched() -> list[str]:
            newest: dict[str, float] = {}
            with os.scandir(self._uploads) as entries:
                for entry in entries:
                    match = _UPLOAD_FILE.fullmatch(entry.name)
                    if match is None:
                        continue
                    try:
                        # The last write. (A `.committed` file's upload row goes with the
                        # commit's record, after which its bytes are the blob's, linked.)
                        moment = entry.stat().st_mtime
                    except FileNotFoundError:  # removed while listed
                        continue
                    upload_id = match.group("id")
                    newest[upload_id] = max(moment, newest.get(upload_id, moment))
            return [upload_id for upload_id, moment in newest.items() if moment < cutoff][:limit]

        return await to_thread.run_sync(untouched)

    async def stored_blobs(self, after: str | None, limit: int) -> list[StoredBlob]:
        start = Digest.parse(after) if after is not None else None

        def listed() -> list[StoredBlob]:
            found: list[StoredBlob] = []
            # Only what this driver writes: a stray file (an editor's, NFS's) is not a blob.
            for algorithm in _sorted_names(self._blobs, _ALGORITHM):
                if start is not None and algorithm < start.algorithm:
                    continue
                after_hex = start.hex if start is not None and algorithm == start.algorithm else ""
                for shard in _sorted_names(self._blobs / algorithm, _SHARD):
                    if shard < after_hex[:2]:
                        continue
                    for name in _sorted_names(self._blobs / algorithm / shard, _HEX):
                        if name <= after_hex or not name.startswith(shard):
                            continue
                        try:
                            # ctime: when the blob's link was made (the commit), not when the
                            # upload's bytes were last written.
                            status = (self._blobs / algorithm / shard / name).stat()
                        except FileNotFoundError:  # deleted while listed
                            continue
                        found.append(
                            StoredBlob(
                                f"{algorithm}:{name}",
                                status.st_size,
                                datetime.fromtimestamp(status.st_ctime, UTC),
                            )
                        )
                        if len(found) >= limit:
                            return found
            return found

        return await to_thread.run_sync(listed)

    async def abandoned_commits(self, written_before: datetime) -> int:
        # A commit is one rename and one link; a copy left half made is an upload file
        # (`.copying`), which the upload sweep drops with its upload.
        return 0


def _sorted_names(folder: Path, form: re.Pattern[str]) -> list[str]:
    """The names in `folder` of the form blob paths' parts have, sorted."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if form.fullmatch(entry.name))
    except FileNotFoundError:
        return []


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def _close_quietly(file: BinaryIO) -> None:
    """Release the descriptor after a failed close (whatever was buffered is lost anyway)."""
    try:
        file.close()
    except OSError:
        os.close(file.fileno())


async def _read_file(path: Path, start: int, end: int | None) -> AsyncIterator[bytes]:
    """Stream [start, end) of a file, reading the next piece while the caller sends this one.
    The open goes with the first read, and the close with the last when `end` is known: a
    small blob is one worker-thread hop."""
    remaining = None if end is None else end - start
    file: BinaryIO | None = None

    def read(size: int, last: bool) -> bytes:
        nonlocal file
        if file is None:
            file = open(path, "rb")  # noqa: SIM115 - closed by the last read, or below
            try:
                if start:
                    file.seek(start)
            except BaseException:
                file.close()
                raise
        chunk = file.read(size)
        if last or not chunk:
            file.close()
        return chunk

    def read_next() -> asyncio.Future[bytes] | None:
        nonlocal remaining
        if remaining is not None and remaining <= 0:
            return None
        size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
        if remaining is not None:
            remaining -= size
        last = remaining is not None and remaining <= 0
        return asyncio.ensure_future(to_thread.run_sync(read, size, last))

    pending: asyncio.Future[bytes] | None = None
    try:
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
        if file is not None and not file.closed:
            await to_thread.run_sync(file.close)
