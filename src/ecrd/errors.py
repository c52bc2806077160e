"""Protocol-neutral domain errors.

Each edge (OCI, AWS) maps these to its own codes in one table; nothing here knows HTTP.

    RegistryError
    ├── NameInvalid, TagInvalid, SizeInvalid, ParameterInvalid
    ├── DigestInvalid
    │   └── DigestMismatch        (content that does not hash to the digest named)
    ├── RepositoryNotFound, BlobNotFound, ManifestNotFound, UploadNotFound, PolicyNotFound
    │   └── RepositoryDeleted     (deleted while the request was writing into it)
    ├── RepositoryAlreadyExists, RepositoryNotEmpty, TooManyTags, PolicyInvalid
    ├── UploadOutOfOrder          (a chunk that does not start at the current offset)
    ├── UploadEmpty, BlobAlreadyExists
    ├── TooManyUploads            (the registry's bound on open uploads is reached)
    ├── StorageFull               (the disk under the blob or metadata store is full)
    ├── ManifestInvalid, ManifestTooLarge, ManifestReferenced
    │   └── MediaTypeMissing      (no media type given where it may not be inferred)
    ├── ManifestBlobUnknown       (layers or config missing)
    │   └── ManifestChildUnknown  (manifests an index lists are missing)
    ├── ImageAlreadyExists        (the same manifest and tag again)
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


class DigestMismatch(DigestInvalid):
    """Content whose digest is not the one the request named."""


class SizeInvalid(RegistryError):
    pass


class RepositoryNotFound(RegistryError):
    pass


class RepositoryDeleted(RepositoryNotFound):
    """A write found its repository gone: it was deleted while the request ran."""

    def __init__(self, message: str = "the repository was deleted while this request ran") -> None:
        super().__init__(message)


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


class MediaTypeMissing(ManifestInvalid):
    """A manifest that names no media type, where none may be inferred from its shape."""


class ManifestTooLarge(RegistryError):
    pass


class ManifestBlobUnknown(RegistryError):
    def __init__(self, message: str, digests: list[str]) -> None:
        super().__init__(message)
        self.digests = digests

    @property
    def digest(self) -> str:
        return self.digests[0]


class ManifestChildUnknown(ManifestBlobUnknown):
    pass


class ManifestReferenced(RegistryError):
    def __init__(self, message: str, index_digest: str) -> None:
        super().__init__(message)
        self.index_digest = index_digest


class TagImmutable(RegistryError):
    pass


class ParameterInvalid(RegistryError):
    """A request value that no edge-level check caught, e.g. a filter given where none may be."""


class PolicyNotFound(RegistryError):
    pass


class PolicyInvalid(RegistryError):
    pass


class RepositoryAlreadyExists(RegistryError):
    pass


class RepositoryNotEmpty(RegistryError):
    pass


class TooManyTags(RegistryError):
    pass


class UploadEmpty(RegistryError):
    pass


class BlobAlreadyExists(RegistryError):
    pass


class ImageAlreadyExists(RegistryError):
    pass


class TooManyUploads(RegistryError):
    pass


class UploadTooFragmented(RegistryError):
    """An upload holds as many chunks as its blob store can join into one blob."""


class StorageFull(RegistryError):
    """No space is left where ecrd keeps bytes or metadata; nothing partial was kept."""


class LifecyclePolicyNotFound(RegistryError):
    """The repository has no lifecycle policy."""


class LifecyclePreviewNotFound(RegistryError):
    """No lifecycle policy preview was started for the repository."""


class LifecyclePreviewInProgress(RegistryError):
    """A lifecycle policy preview of the repository is still being computed."""


class BlobBusy(RegistryError):
    """The garbage collector is deleting an older copy of this blob and did not finish in time:
    the client should retry."""


class ManifestArchived(ManifestNotFound):
    """A manifest that is there but archived, or still being restored: it cannot be pulled."""


class StorageClassChangeRefused(RegistryError):
    """A storage class change the image's state does not allow (it is in that class already,
    is being restored, or a manifest list it belongs to needs it as it is)."""


class ExclusionAlreadyExists(RegistryError):
    """The principal is already on the registry's pull-time update exclusion list."""


class ExclusionNotFound(RegistryError):
    """The principal is not on the registry's pull-time update exclusion list."""


class TooManyExclusions(RegistryError):
    """The registry's pull-time update exclusion list is full."""


class ImageTagsChanged(RegistryError):
    """An image was to be deleted as it was tagged when a policy looked at it, and its tags
    have changed since: it stays."""


class TemplateAlreadyExists(RegistryError):
    """A repository creation template has that prefix already."""


class TemplateNotFound(RegistryError):
    """No repository creation template has that prefix."""


class TooManyTemplates(RegistryError):
    """The registry has as many repository creation templates as it may."""


class PullThroughRuleAlreadyExists(RegistryError):
    """A pull-through cache rule has that repository prefix already."""


class PullThroughRuleNotFound(RegistryError):
    """No pull-through cache rule has that repository prefix."""


class TooManyPullThroughRules(RegistryError):
    """The registry has as many pull-through cache rules as it may."""


class UpstreamRegistryUnsupported(RegistryError):
    """A pull-through cache rule names an upstream registry (or URL) ecrd cannot cache."""


class SecretInaccessible(RegistryError):
    """A rule's credential secret is in another account or region than its registry."""


class PullThroughPushRefused(RegistryError):
    """A push into a repository that a pull-through cache rule covers: its images come only
    from the upstream."""


class UpstreamUnavailable(RegistryError):
    """The upstream of a pull-through cache is out of reach (down, timing out, rate limiting)
    and ecrd has nothing cached to serve instead."""


class UpstreamDenied(RegistryError):
    """The upstream of a pull-through cache refused the rule's credentials (or asked for
    some where the rule has none)."""


class SecretNotFound(RegistryError):
    """No Secrets Manager secret (or no version of it) answers to that id in the account and
    region; or, read from inside ecrd, one scheduled for deletion."""


class SecretScheduledForDeletion(SecretNotFound):
    """The secret is scheduled for deletion: only DescribeSecret, RestoreSecret and a forced
    DeleteSecret act on it, and its name is taken until it is purged."""


class SecretAlreadyExists(RegistryError):
    """A secret has that name already, or a version has that ClientRequestToken with another
    value."""


class SecretUndecryptable(RegistryError):
    """A stored secret value does not open with the keyring: sealed with a key the keyring
    no longer has, or altered."""


class BackfillInProgress(RegistryError):
    """A replication backfill to that destination region is under way already."""


class BackfillNotFound(RegistryError):
    """No replication backfill of the registry has that id."""


class BackfillStatusInvalid(RegistryError):
    """The replication backfill is not in a status that allows this (stopping one that ended)."""


class TooManyBackfills(RegistryError):
    """The registry has as many replication backfills under way as it may."""


class SigningConfigurationNotFound(RegistryError):
    """The registry has no signing configuration."""


class ScanNotFound(RegistryError):
    """The image has not been scanned."""


class ImageTypeUnsupported(RegistryError):
    """The image is of a kind the scanner does not read (an index, a non-image artifact)."""


class ScanQuotaExceeded(RegistryError):
    """The image was scanned less than a day ago (ECR's one basic scan per image per day)."""


class ScanOfArchivedImage(RegistryError):
    """The image is archived: restore it before scanning."""
