"""Manifests, what they reference, and the tags that point at them."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from ecrd.auth.principals import Principal
from ecrd.errors import (
    ManifestBlobUnknown,
    ManifestChildUnknown,
    RepositoryDeleted,
    TagImmutable,
)
from ecrd.metadata.blobs import release_blobs_of
from ecrd.metadata.database import Database
from ecrd.metadata.images import refuse_if_referenced
from ecrd.metadata.records import (
    Manifest,
    NewManifest,
    Repository,
    StoredManifest,
    as_utc,
    as_utc_or_none,
    utcnow,
)
from ecrd.metadata.registries import POLICY_COLUMNS, POLICY_SCOPE_AND_REPOSITORY, PolicyAndScope
from ecrd.metadata.replication import DELETE, PUSH, UNTAG, queue_replication
from ecrd.metadata.repositories import COLUMNS as REPOSITORY_COLUMNS
from ecrd.metadata.repositories import repository_record
from ecrd.metadata.schema import (
    manifest_blobs,
    manifest_children,
    manifests,
    registries,
    repositories,
    repository_blobs,
    tags,
)
from ecrd.metadata.signing import queue_signing
from ecrd.metadata.statements import (
    insert_ignoring_conflicts,
    repository_exists,
    upsert,
)
from ecrd.metadata.storage_classes import ACTIVE, status_column, status_of


def _record(row: Any, prefix: str = "") -> Manifest:
    """A Manifest from a result row whose manifest columns carry `prefix` in their names."""
    values = row._mapping

    def moment(name: str) -> datetime | None:
        return as_utc_or_none(values[f"{prefix}{name}"])

    return Manifest(
        id=values[f"{prefix}id"],
        repository_id=values[f"{prefix}repository_id"],
        digest=values[f"{prefix}digest"],
        media_type=values[f"{prefix}media_type"],
        artifact_type=values[f"{prefix}artifact_type"],
        config_media_type=values[f"{prefix}config_media_type"],
        subject_digest=values[f"{prefix}subject_digest"],
        annotations_json=values[f"{prefix}annotations_json"],
        size=values[f"{prefix}size"],
        payload=values[f"{prefix}payload"],
        pushed_at=as_utc(values[f"{prefix}pushed_at"]),
        last_pulled_at=moment("last_pulled_at"),
        image_status=values[f"{prefix}image_status"],
        last_archived_at=moment("last_archived_at"),
        last_activated_at=moment("last_activated_at"),
        status_changed_at=moment("status_changed_at"),
    )


# Images whose pull time one statement sets (bound parameters stay well under SQLite's limit).
PULL_BATCH = 500
_REPOSITORY_MATCH = (repositories.c.registry_id == bindparam("registry_id")) & (
    repositories.c.name == bindparam("name")
)
# The tag, and the manifest by digest, that the parameters name in the joined repository.
_TAG_OF_REPOSITORY = and_(
    tags.c.repository_id == repositories.c.id, tags.c.name == bindparam("tag")
)
_DIGEST_IN_REPOSITORY = and_(
    manifests.c.repository_id == repositories.c.id, manifests.c.digest == bindparam("digest")
)
_MANIFEST_COLUMNS = [column.label(f"manifest_{column.name}") for column in manifests.c]
# The pull path's one statement: the repository by name, and the manifest a tag or digest
# names in it (NULLs when only the repository exists). Built once; executions bind values.
_PULL_BY_TAG = (
    select(*REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        repositories.outerjoin(tags, _TAG_OF_REPOSITORY).outerjoin(
            manifests, manifests.c.id == tags.c.manifest_id
        )
    )
    .where(_REPOSITORY_MATCH)
)
_PULL_BY_DIGEST = (
    select(*REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        repositories.outerjoin(
            manifests,
            _DIGEST_IN_REPOSITORY,
        )
    )
    .where(_REPOSITORY_MATCH)
)


# The same, with the registry policy and its scope in front: what an authorized pull needs
# besides the caller, in one statement (no repository: NULLs after the policy; a registry
# with no row: no row).
_AUTHORIZED_PULL_BY_TAG = (
    select(*POLICY_COLUMNS, *REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        POLICY_SCOPE_AND_REPOSITORY.outerjoin(tags, _TAG_OF_REPOSITORY).outerjoin(
            manifests, manifests.c.id == tags.c.manifest_id
        )
    )
    .where(registries.c.id == bindparam("registry_id"))
)
_AUTHORIZED_PULL_BY_DIGEST = (
    select(*POLICY_COLUMNS, *REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        POLICY_SCOPE_AND_REPOSITORY.outerjoin(
            manifests,
            _DIGEST_IN_REPOSITORY,
        )
    )
    .where(registries.c.id == bindparam("registry_id"))
)


def _pulled(row: Any) -> tuple[Repository, Manifest | None]:
    repository = repository_record(row)
    if row.manifest_id is None:
        return repository, None
    return repository, _record(row, prefix="manifest_")


def _one_manifest(connection: Connection, query: Any) -> Manifest | None:
    row = connection.execute(query).first()
    return None if row is None else _record(row)


@dataclass(frozen=True)
class AuthorizedPull:
    """The registry policy and its scope, and what a pull finds: None when the repository
    does not exist, else the repository and the manifest (None: not in it)."""

    policy_and_scope: PolicyAndScope
    found: tuple[Repository, Manifest | None] | None


class ManifestStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def put(
        self,
        repository_id: int,
        new: NewManifest,
        tag_or_tags: str | Sequence[str] | None,
        immutable_tags: Container[str] = frozenset(),
        require_references: bool = True,
        replicate: bool = True,
        pusher: Principal | None = None,
    ) -> StoredManifest:
        """Store a manifest and point `tag_or_tags` (one, several or none) at it, in one
        transaction, queueing its replication and signing where the registry's rules say (not
        for a replica itself: `replicate` off; ECR replicates a push once). `pusher` is who
        pushed it (signed with that identity; None when ecrd itself stores it).

        Raises ManifestBlobUnknown when a referenced blob is not linked to the repository,
        ManifestChildUnknown when a child manifest is not in it (both unless
        `require_references` is off), and TagImmutable when one of `immutable_tags` already
        points elsewhere (then no tag moves).
        """
        dialect = self._database.dialect
        tag_names = [tag_or_tags] if isinstance(tag_or_tags, str) else list(tag_or_tags or ())

        def work(connection: Connection) -> StoredManifest:
            if require_references:
                try:
                    _check_references(connection, repository_id, new)
                except ManifestBlobUnknown:
                    # A repository deleted since the caller looked it up has no blobs any
                    # more: say that, rather than that the manifest's blobs are missing.
                    if not repository_exists(connection, repository_id):
                        raise RepositoryDeleted() from None
                    raise
            size = new.size
            if new.child_digests:
                # ECR's size of a manifest list: the largest image it lists.
                size = (
                    connection.execute(
                        select(func.max(manifests.c.size)).where(
                            (manifests.c.repository_id == repository_id)
                            & manifests.c.digest.in_(new.child_digests)
                        )
                    ).scalar()
                    or 0
                )
            insert_manifest = insert_ignoring_conflicts(
                dialect,
                manifests,
                repository_id=repository_id,
                digest=new.digest,
                media_type=new.media_type,
                artifact_type=new.artifact_type,
                config_media_type=new.config_media_type,
                subject_digest=new.subject_digest,
                annotations_json=new.annotations_json,
                size=size,
                payload=new.payload,
                pushed_at=utcnow(),
            ).returning(manifests.c.id)
            # FOR SHARE (PostgreSQL; SQLite's one writer needs none): a delete of the manifest
            # that was already there waits until its tags are written, instead of removing it
            # between this read and them.
            stored_row = (
                select(manifests)
                .where(
                    (manifests.c.repository_id == repository_id)
                    & (manifests.c.digest == new.digest)
                )
                .with_for_update(read=True)
            )
            for _attempt in range(2):
                created = connection.execute(insert_manifest).first() is not None
                stored = _one_manifest(connection, stored_row)
                if stored is not None:
                    break
                # The manifest that was there was deleted meanwhile: store it anew.
            else:
                raise RuntimeError(f"manifest {new.digest} vanished while being stored")
            restored = False
            now = utcnow()
            if (
                not created
                and status_of(stored.image_status, stored.last_activated_at, now) != ACTIVE
            ):
                # Pushing an archived image again restores it at once, as on ECR.
                connection.execute(
                    update(manifests)
                    .where(manifests.c.id == stored.id)
                    .values(image_status=ACTIVE, last_activated_at=now, status_changed_at=now)
                )
                stored = dataclasses.replace(
                    stored, image_status=ACTIVE, last_activated_at=now, status_changed_at=now
                )
                restored = True
            if created:
                if new.blob_digests:
                    connection.execute(
                        insert(manifest_blobs),
                        [{"manifest_id": stored.id, "blob_digest": d} for d in new.blob_digests],
                    )
                if new.child_digests:
                    connection.execute(
                        insert(manifest_children),
                        [{"manifest_id": stored.id, "child_digest": d} for d in new.child_digests],
                    )

            def current_of(tag: str) -> int | None:
                return connection.execute(
                    select(tags.c.manifest_id).where(
                        (tags.c.repository_id == repository_id) & (tags.c.name == tag)
                    )
                ).scalar()

            moving = []
            # In one order for every writer: two pushes naming the same tags in other orders
            # would otherwise lock them crosswise and deadlock on PostgreSQL.
            for tag in sorted(set(tag_names)):
                current = current_of(tag)
                if current is not None and current != stored.id and tag in immutable_tags:
                    raise TagImmutable(f"tag {tag!r} already exists and tags are immutable")
                if current != stored.id:
                    moving.append(tag)
            for tag in moving:
                row = {
                    "repository_id": repository_id,
                    "name": tag,
                    "manifest_id": stored.id,
                    "updated_at": utcnow(),
                }
                if tag not in immutable_tags:
                    connection.execute(upsert(dialect, tags, ["repository_id", "name"], **row))
                elif (
                    not connection.execute(
                        insert_ignoring_conflicts(dialect, tags, **row).returning(tags.c.name)
                    ).first()
                    and current_of(tag) != stored.id
                ):
                    # Another transaction made this immutable tag since it was read above (on
                    # PostgreSQL the insert waits for that one to commit, then conflicts): the
                    # first push keeps it, as ECR keeps the first of two racing pushes.
                    raise TagImmutable(f"tag {tag!r} already exists and tags are immutable")
            changed = bool(replicate and (created or moving or restored))
            queued = changed and queue_replication(connection, repository_id, new.digest, PUSH)
            # Referrers (signatures among them) are not signed themselves.
            to_sign = changed and new.subject_digest is None
            signing = to_sign and queue_signing(connection, repository_id, new.digest, pusher)
            return StoredManifest(
                manifest=stored,
                created=created,
                tag_moved=bool(moving),
                restored=restored,
                replication_queued=queued,
                signing_queued=signing,
            )

        return await self._database.write(work)

    async def find_for_pull(
        self, registry_id: int, name: str, tag: str | None, digest: str | None
    ) -> tuple[Repository, Manifest | None] | None:
        """The repository and the manifest `tag` or `digest` names, in one statement.

        None when the repository does not exist; (repository, None) when the manifest does not.
        """
        statement = _PULL_BY_TAG if tag is not None else _PULL_BY_DIGEST
        parameters = {"registry_id": registry_id, "name": name, "tag": tag, "digest": digest}

        row = await self._database.read_first(statement, parameters)
        return None if row is None else _pulled(row)

    async def find_for_authorized_pull(
        self, registry_id: int, name: str, tag: str | None, digest: str | None
    ) -> AuthorizedPull:
        """What find_for_pull answers (None: no repository), with the registry policy and
        its scope, in one statement."""
        statement = _AUTHORIZED_PULL_BY_TAG if tag is not None else _AUTHORIZED_PULL_BY_DIGEST
        parameters = {"registry_id": registry_id, "name": name, "tag": tag, "digest": digest}
        row = await self._database.read_first(statement, parameters)
        if row is None:  # a registry nothing was stored in yet
            return AuthorizedPull((None, None), None)
        policy_and_scope = (row.registry_policy_text, row.policy_scope)
        return AuthorizedPull(policy_and_scope, None if row.id is None else _pulled(row))

    async def find(
        self, repository_id: int, tag: str | None, digest: str | None
    ) -> Manifest | None:
        """The manifest `tag` names (and, when both are given, only if it has `digest`)."""
        query = select(manifests).where(manifests.c.repository_id == repository_id)
        if tag is not None:
            # By the tags' key (repository, name): the name alone would scan every tag of it.
            query = query.select_from(
                manifests.join(tags, tags.c.manifest_id == manifests.c.id)
            ).where((tags.c.repository_id == repository_id) & (tags.c.name == tag))
        if digest is not None:
            query = query.where(manifests.c.digest == digest)
        return await self._database.read(lambda connection: _one_manifest(connection, query))

    async def find_many(
        self, repository_id: int, tag_names: Sequence[str], digests: Sequence[str]
    ) -> tuple[dict[str, Manifest], dict[str, Manifest]]:
        """The manifests of the repository that `tag_names` and `digests` name, in two
        statements whatever their number: (by tag, by digest); those that do not exist are
        left out."""
        by_tag_query = (
            select(tags.c.name.label("tag_name"), manifests)
            .select_from(manifests.join(tags, tags.c.manifest_id == manifests.c.id))
            .where((tags.c.repository_id == repository_id) & tags.c.name.in_(set(tag_names)))
        )
        by_digest_query = select(manifests).where(
            (manifests.c.repository_id == repository_id) & manifests.c.digest.in_(set(digests))
        )

        def work(connection: Connection) -> tuple[dict[str, Manifest], dict[str, Manifest]]:
            by_tag = (
                {row.tag_name: _record(row) for row in connection.execute(by_tag_query)}
                if tag_names
                else {}
            )
            by_digest = (
                {row.digest: _record(row) for row in connection.execute(by_digest_query)}
                if digests
                else {}
            )
            return by_tag, by_digest

        return await self._database.read(work)

    async def delete(self, repository_id: int, digest: str, replicate: bool = True) -> bool:
        """Delete a manifest and its tags; refuse while an index in the repository lists it.
        The delete is queued for replication where the rules say (unless `replicate` is off)."""

        def work(connection: Connection) -> bool:
            refuse_if_referenced(connection, repository_id, digest)
            manifest_id = connection.execute(
                select(manifests.c.id).where(
                    (manifests.c.repository_id == repository_id) & (manifests.c.digest == digest)
                )
            ).scalar()
            if manifest_id is None:
                return False
            release_blobs_of(connection, repository_id, manifest_id)
            result = connection.execute(delete(manifests).where(manifests.c.id == manifest_id))
            if replicate:
                queue_replication(connection, repository_id, digest, DELETE)
            return bool(result.rowcount)

        return await self._database.write(work)

    async def delete_tag(self, repository_id: int, tag: str, replicate: bool = True) -> bool:
        """Remove a tag (its image stays); the removal is queued for replication where the
        rules say (unless `replicate` is off)."""
        match = (tags.c.repository_id == repository_id) & (tags.c.name == tag)
        tagged = select(manifests.c.digest).join(tags, tags.c.manifest_id == manifests.c.id)

        def work(connection: Connection) -> bool:
            digest = connection.execute(tagged.where(match)).scalar()
            if digest is None:
                return False
            connection.execute(delete(tags).where(match))
            if replicate:
                queue_replication(connection, repository_id, digest, UNTAG)
            return True

        return await self._database.write(work)

    async def list_tags(self, repository_id: int, after: str | None, limit: int) -> list[str]:
        """Tag names in lexical order, those after `after`, at most `limit` of them."""
        query = select(tags.c.name).where(tags.c.repository_id == repository_id)
        if after is not None:
            query = query.where(tags.c.name > after)
        query = query.order_by(tags.c.name).limit(limit)
        return await self._database.read(
            lambda connection: list(connection.execute(query).scalars())
        )

    async def referrers(
        self,
        repository_id: int,
        subject_digest: str,
        artifact_types: list[str] | None,
        after_digest: str | None,
        limit: int | None,
        image_status: str = "ANY",
    ) -> list[Manifest]:
        """Manifests whose subject is `subject_digest`, in digest order; of one image status
        (at the time of the call) unless `image_status` is ANY."""
        query = select(manifests).where(
            (manifests.c.repository_id == repository_id)
            & (manifests.c.subject_digest == subject_digest)
        )
        if artifact_types:
            query = query.where(manifests.c.artifact_type.in_(artifact_types))
        if image_status != "ANY":
            query = query.where(status_column(utcnow()) == image_status)
        if after_digest is not None:
            query = query.where(manifests.c.digest > after_digest)
        query = query.order_by(manifests.c.digest).limit(limit)
        return await self._database.read(
            lambda connection: [_record(row) for row in connection.execute(query)]
        )

    async def record_pulls(self, manifest_ids: Collection[int], pulled_at: datetime) -> None:
        """Set the images' last pull time, in one transaction (manifests gone meanwhile are
        skipped)."""
        ordered = sorted(manifest_ids)  # one lock order for every writer (PostgreSQL)

        def work(connection: Connection) -> None:
            for start in range(0, len(ordered), PULL_BATCH):
                connection.execute(
                    update(manifests)
                    .where(manifests.c.id.in_(ordered[start : start + PULL_BATCH]))
                    .values(last_pulled_at=pulled_at)
                )

        await self._database.write(work)


def _check_references(connection: Connection, repository_id: int, new: NewManifest) -> None:
    if new.blob_digests:
        linked = set(
            connection.execute(
                select(repository_blobs.c.blob_digest)
                .where(
                    (repository_blobs.c.repository_id == repository_id)
                    & repository_blobs.c.blob_digest.in_(new.blob_digests)
                )
                # FOR SHARE (PostgreSQL): the garbage collector locks a link before it deletes
                # it, so it either waits for this manifest (and then sees it) or is done first
                # (and this finds the link gone).
                .with_for_update(read=True)
            ).scalars()
        )
        missing = sorted(new.blob_digests - linked)
        if missing:
            raise ManifestBlobUnknown(
                f"blobs {', '.join(missing)} are not in the repository", missing
            )
    if new.child_digests:
        present = set(
            connection.execute(
                select(manifests.c.digest).where(
                    (manifests.c.repository_id == repository_id)
                    & manifests.c.digest.in_(new.child_digests)
                )
            ).scalars()
        )
        missing = sorted(new.child_digests - present)
        if missing:
            raise ManifestChildUnknown(
                f"manifests {', '.join(missing)} are not in the repository", missing
            )
