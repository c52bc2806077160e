"""The BlobStore protocol: what the domain needs from a place that keeps blob bytes.

A driver knows bytes and paths, never repositories, tags or HTTP. Upload bytes live apart from
committed blobs until `commit_upload` puts them in place, after the caller has verified the
digest; a committed blob is never partial and never changes. A commit leaves the upload's bytes
where they are until `abort_upload`, so that it can be repeated: the garbage collector may have
deleted the blob (same digest, an older copy) between a commit and the caller's record of it.

A driver raises `errors.StorageFull` when its storage has no room (the caller then drops the
upload at once), and `UploadBytesMissing` when an upload's bytes are gone (cancelled, expired or
its repository deleted by another request meanwhile).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class UploadBytesMissing(Exception):
    """An upload's bytes are not in the store any more."""


@dataclass(frozen=True)
class StoredBlob:
    """A committed blob as the store lists it."""

    digest: str
    size: int
    # When its bytes were put in place (the newest commit of that digest).
    written_at: datetime


class UploadWriter(Protocol):
    async def write(self, data: bytes) -> None:
        """Append `data` at the writer's current position."""

    async def close(self) -> str:
        """Finish this append; return the driver state JSON to keep in the upload row."""


class BlobStore(Protocol):
    async def check(self) -> None:
        """Raise what the storage raises when it cannot be reached or used (a lost mount, a
        missing bucket, refused credentials); return when it works. For readiness and start."""

    def close(self) -> None:
        """Let go of connections and pools (at shutdown)."""

    async def stat(self, digest: str) -> int | None:
        """Size of the committed blob, or None when it is not stored."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a committed blob (to its end when `end` is None)."""

    async def delete(self, digest: str) -> None:
        """Remove a committed blob; no error when it is already gone."""

    async def delete_many(self, digests: Sequence[str]) -> list[str]:
        """Remove committed blobs (the garbage collector's batches); return the digests the
        store could not delete. None already gone is an error."""

    async def download_url(self, digest: str) -> str | None:
        """A presigned URL anyone may GET the committed blob from, without credentials, for a
        limited time (S3's presigned GET); None when the store has no such URLs. Whether a
        blob GET redirects there is the caller's choice."""

    async def start_upload(self, upload_id: str) -> str:
        """Prepare an empty upload; return its driver state JSON."""

    async def open_upload(self, upload_id: str, driver_state: str, offset: int) -> UploadWriter:
        """A writer that appends at `offset`, discarding any stored bytes past it.

        `driver_state` is what the last `close` (or `start_upload`) returned and the upload row
        kept: any process may open the upload next, so the driver keeps nothing in memory
        between appends."""

    def read_upload(self, upload_id: str, driver_state: str) -> AsyncIterator[bytes]:
        """Stream the bytes an upload holds so far (to hash them again)."""

    async def commit_upload(self, upload_id: str, driver_state: str, digest: str) -> None:
        """Put a verified upload's bytes in place as blob `digest` (nothing to do when the blob
        is there already). The upload takes no more appends, but its bytes stay until
        `abort_upload`, so a second commit of the same upload puts them back."""

    async def abort_upload(self, upload_id: str, driver_state: str) -> None:
        """Drop an upload's bytes; no error when they are already gone."""

    async def stored_uploads(self, written_before: datetime, limit: int) -> list[str]:
        """Ids of uploads the store holds bytes of, none written since `written_before`; at
        most `limit`. (The sweep drops those that no upload row names: bytes a crash left.)"""

    async def stored_blobs(self, after: str | None, limit: int) -> list[StoredBlob]:
        """Committed blobs in digest order, those after digest `after`, at most `limit`. (The
        garbage collector drops those with no blob row: bytes a crash left before the row.)"""

    async def abandoned_commits(self, written_before: datetime) -> int:
        """Drop the pieces of commits that never finished and were started before
        `written_before` (a process killed while assembling a blob); return how many."""
