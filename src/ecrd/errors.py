"""Protocol-neutral domain errors.

Each edge (OCI, AWS) maps these to its own codes in one table; nothing here knows HTTP.

    RegistryError
    ├── NameInvalid, TagInvalid, DigestInvalid, SizeInvalid
    ├── RepositoryNotFound, BlobNotFound, ManifestNotFound, UploadNotFound
    ├── UploadOutOfOrder          (a chunk that does not start at the current offset)
    ├── ManifestInvalid, ManifestTooLarge, ManifestBlobUnknown, ManifestReferenced
    └── TagImmutable
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NameInvalid(RegistryError):
    pass


class TagInvalid(RegistryError):
    pass


class DigestInvalid(RegistryError):
    pass


class SizeInvalid(RegistryError):
    pass


class RepositoryNotFound(RegistryError):
    pass


class BlobNotFound(RegistryError):
    pass


class ManifestNotFound(RegistryError):
    pass


class UploadNotFound(RegistryError):
    pass


class UploadOutOfOrder(RegistryError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class ManifestInvalid(RegistryError):
    pass


class ManifestTooLarge(RegistryError):
    pass


class ManifestBlobUnknown(RegistryError):
    def __init__(self, message: str, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


class ManifestReferenced(RegistryError):
    pass


class TagImmutable(RegistryError):
    pass
