"""Frozen records: the only shapes that leave the metadata layer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time ecrd stores is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def as_utc_or_none(moment: datetime | None) -> datetime | None:
    """`as_utc` of a nullable column."""
    return None if moment is None else as_utc(moment)


# The id of a registry that has no row yet; database ids start at 1.
UNSTORED_ID = 0


@dataclass(frozen=True)
class Registry:
    """One (account, region, kind). A registry nothing was ever stored in has no row yet and
    `id` UNSTORED_ID (no row has that id, so queries by it find nothing); the row is made when
    something is first stored in it, never for a mere read or a refused request."""

    id: int
    account_id: str
    region: str
    kind: str
    # ECR Public: the alias its repositories are addressed by (`<alias>/<name>`).
    alias: str | None = None

    @property
    def is_stored(self) -> bool:
        return self.id != UNSTORED_ID


@dataclass(frozen=True)
class TagFilter:
    """An exclusion from a repository's tag mutability: tags matching `filter` (with `*`)."""

    filter_type: str
    filter: str

    def matches(self, tag: str) -> bool:
        return wildcard_matches(self.filter, tag)


@lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def wildcard_matches(pattern: str, text: str) -> bool:
    """Whether `text` matches an ECR filter in which `*` is any run of characters (tag
    mutability exclusions, scanning and signing filters)."""
    return _wildcard(pattern).fullmatch(text) is not None


@dataclass(frozen=True)
class Repository:
    id: int
    registry_id: int
    name: str
    arn: str
    created_at: datetime
    image_tag_mutability: str
    tag_mutability_exclusions: tuple[TagFilter, ...] = ()
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str | None = None
    # The repository policy (IAM JSON), read with the row because every request checks it.
    policy_text: str | None = None

    def tag_is_immutable(self, tag: str) -> bool:
        """Whether `tag`, once set, may not move: the mutability setting and its exclusions."""
        excluded = any(exclusion.matches(tag) for exclusion in self.tag_mutability_exclusions)
        if self.image_tag_mutability == "IMMUTABLE":
            return True
        if self.image_tag_mutability == "IMMUTABLE_WITH_EXCLUSION":
            return not excluded
        if self.image_tag_mutability == "MUTABLE_WITH_EXCLUSION":
            return excluded
        return False


@dataclass(frozen=True)
class RepositorySettings:
    """What a caller may choose about a repository, at creation or later."""

    image_tag_mutability: str = "MUTABLE"
    tag_mutability_exclusions: tuple[TagFilter, ...] = ()
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str | None = None


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Upload:
    id: str
    repository_id: int
    offset: int
    driver_state_json: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewManifest:
    """A parsed manifest ready to store, with everything it references."""

    digest: str
    media_type: str
    payload: bytes
    size: int
    artifact_type: str | None
    config_media_type: str | None
    subject_digest: str | None
    annotations_json: str | None
    blob_digests: frozenset[str]
    child_digests: frozenset[str]


@dataclass(frozen=True)
class Manifest:
    id: int
    repository_id: int
    digest: str
    media_type: str
    artifact_type: str | None
    config_media_type: str | None
    subject_digest: str | None
    annotations_json: str | None
    size: int
    payload: bytes
    pushed_at: datetime
    last_pulled_at: datetime | None
    # ECR's imageStatus as stored (ACTIVE, ARCHIVED, ACTIVATING) and its times; what it is at
    # a given moment is `metadata.storage_classes.status_of` (a restore ends by itself).
    image_status: str = "ACTIVE"
    last_archived_at: datetime | None = None
    last_activated_at: datetime | None = None
    status_changed_at: datetime | None = None


@dataclass(frozen=True)
class StoredManifest:
    """The outcome of storing a manifest: its row, whether this call created it, and whether
    it moved the tag it was given."""

    manifest: Manifest
    created: bool
    tag_moved: bool = False
    # Whether this put brought an archived (or restoring) manifest back to ACTIVE.
    restored: bool = False
    # Whether the put queued the image for replication, and for signing (rules cover it).
    replication_queued: bool = False
    signing_queued: bool = False
