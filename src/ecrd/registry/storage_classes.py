"""Storage classes of images: archive an image (it stays listed and described, but cannot be
pulled) and restore it to STANDARD, which takes `archive_restore_seconds` (ECR: up to 20
minutes). Pushing an archived image again restores it at once (ManifestStore.put).

The bytes stay where they are: an archived image keeps its blobs, so the garbage collector
keeps them too, and a restore has nothing to copy back.
"""

from __future__ import annotations

from ecrd.errors import ManifestNotFound, StorageClassChangeRefused
from ecrd.metadata.records import Repository
from ecrd.metadata.storage_classes import ARCHIVE, STANDARD, StatusChange, StorageClassStore


class StorageClassService:
    def __init__(self, store: StorageClassStore, restore_seconds: float) -> None:
        self._store = store
        self.restore_seconds = restore_seconds

    async def archive(self, repository: Repository, digest: str) -> bool:
        """Move an ACTIVE image to ARCHIVE (lifecycle's transition action); True when it moved."""
        try:
            await self._store.change(repository.id, digest, ARCHIVE, self.restore_seconds)
        except (ManifestNotFound, StorageClassChangeRefused):
            # Gone, archived or being restored already, or served by a manifest list that
            # is not archived: nothing a lifecycle run should fail for.
            return False
        return True

    async def update(self, repository: Repository, digest: str, target: str) -> StatusChange:
        """UpdateImageStorageClass: ARCHIVE an ACTIVE image, or restore an ARCHIVED one to
        STANDARD (ACTIVATING, then ACTIVE after `restore_seconds`).

        Raises ManifestNotFound, and StorageClassChangeRefused for an image in the class
        already or being restored, for an image a manifest list that is not archived lists,
        and for a manifest list whose images are archived.
        """
        if target not in (ARCHIVE, STANDARD):
            raise ValueError(f"unknown storage class {target!r}")
        return await self._store.change(repository.id, digest, target, self.restore_seconds)
