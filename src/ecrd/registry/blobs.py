"""Blobs as a repository sees them: only through its links."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ecrd.blobs.store import BlobStore
from ecrd.digests import Digest
from ecrd.errors import BlobNotFound
from ecrd.metadata.blobs import BlobRecords
from ecrd.metadata.records import Blob, Repository


class BlobService:
    def __init__(self, records: BlobRecords, blob_store: BlobStore, redirect: bool = False) -> None:
        self._records = records
        self._blob_store = blob_store
        self._redirect = redirect

    async def get(self, repository: Repository, digest: str) -> Blob:
        """The blob if the repository links it; BlobNotFound otherwise."""
        canonical = str(Digest.parse(digest))
        blob = await self._records.linked(repository.id, canonical)
        if blob is None:
            raise BlobNotFound(f"blob {canonical} is not in repository {repository.name}")
        return blob

    async def linked_in(self, repository_id: int, digest: str) -> Blob | None:
        """The blob if the repository (by id, for background work) links it."""
        return await self._records.linked(repository_id, digest)

    def read(self, blob: Blob, start: int, end: int) -> AsyncIterator[bytes]:
        return self._blob_store.read(blob.digest, start, end)

    async def redirect_url(self, blob: Blob) -> str | None:
        """Where a GET of the blob is sent instead of streaming it: the store's presigned URL,
        when the store has them and redirects are on."""
        return await self._blob_store.download_url(blob.digest) if self._redirect else None

    async def download_url(self, blob: Blob) -> str | None:
        """The store's own presigned URL of the blob (GetDownloadUrlForLayer's, as ECR hands
        out S3's), whether or not GETs redirect there; None when the store has none."""
        return await self._blob_store.download_url(blob.digest)

    async def delete(self, repository: Repository, digest: str) -> None:
        """Unlink the blob from the repository; its bytes stay until garbage collection."""
        canonical = str(Digest.parse(digest))
        if not await self._records.unlink(repository.id, canonical):
            raise BlobNotFound(f"blob {canonical} is not in repository {repository.name}")

    async def mount(self, target: Repository, source: Repository, digest: str) -> Blob | None:
        """Link a blob `source` has into `target`; None when `source` does not have it."""
        canonical = str(Digest.parse(digest))
        if await self._records.linked(source.id, canonical) is None:
            return None
        return await self._records.link(target.id, canonical)
