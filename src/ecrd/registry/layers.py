"""ECR's layer operations over the shared upload service: parts must arrive in order, an
empty upload or a layer the repository already has is refused, as ECR does."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ecrd.digests import Digest
from ecrd.errors import BlobAlreadyExists, UploadEmpty, UploadOutOfOrder
from ecrd.metadata.blobs import BlobRecords
from ecrd.metadata.records import Blob, Registry, Repository, Upload
from ecrd.registry.uploads import UploadService

# What InitiateLayerUpload tells clients to send per UploadLayerPart (ECR says 5 MiB at least).
PART_SIZE = 10 * 1024 * 1024


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class LayerService:
    def __init__(self, uploads: UploadService, blob_records: BlobRecords) -> None:
        self._uploads = uploads
        self._blob_records = blob_records

    async def initiate(self, repository: Repository) -> Upload:
        return await self._uploads.start(repository)

    async def upload_part(
        self, repository: Repository, upload_id: str, first_byte: int, last_byte: int, data: bytes
    ) -> Upload:
        """Append one part, which must start where the upload stands and span its bytes."""
        if last_byte - first_byte + 1 != len(data):
            upload = await self._uploads.get(repository, upload_id)
            raise UploadOutOfOrder(
                f"The part spans bytes {first_byte}-{last_byte} but holds {len(data)} bytes",
                upload.offset,
            )
        # The upload service refuses a part that does not start at the current offset.
        return await self._uploads.append(repository, upload_id, _one_chunk(data), first_byte)

    async def complete(
        self, registry: Registry, repository: Repository, upload_id: str, digest: str
    ) -> Blob:
        """Verify and store the upload as the layer `digest`."""
        upload = await self._uploads.get(repository, upload_id)
        if upload.offset == 0:
            raise UploadEmpty(f"The layer upload with upload id '{upload_id}' is empty")
        canonical = str(Digest.parse(digest))
        if await self._blob_records.linked(repository.id, canonical) is not None:
            await self._uploads.cancel(repository, upload_id)
            raise BlobAlreadyExists(
                f"The layer with digest '{canonical}' already exists in the repository with "
                f"name '{repository.name}' in registry with id '{registry.account_id}'"
            )
        return await self._uploads.finish(repository, upload_id, canonical, upload)

    async def available(self, repository: Repository, digest: str) -> Blob | None:
        return await self._blob_records.linked(repository.id, digest)
