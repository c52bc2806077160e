"""Replication: a registry's rules, and the job that copies what they cover to each
destination registry (another region, another account) of this installation.

    put_configuration  ECR's checks on the rules (see `check_configuration`)
    a change           a push, delete or tag removal queues the image per destination in its
                       own transaction (metadata.replication.queue_replication)
    run_due            the `replication` job: for each queued image, read the source as it is
                       now and make the destination match it:
                         present  the destination repository (made through the destination's
                                  REPLICATION creation template, else ECR's defaults), the
                                  blobs linked (content-addressed, so no bytes move), the
                                  images an index lists, then the image with the source's
                                  tags; with deleteReplication, tags the source dropped go
                         gone     with deleteReplication, the destination's copy is deleted
                       A destination in another account replicates only if its registry
                       policy (or the repository's) lets the source account's root do
                       ecr:ReplicateImage, and ecr:CreateRepository for a repository not
                       there yet, as on ECR. A replica is independent: its repository links
                       the blobs itself, so deleting the source leaves it whole.
                       A transient failure is tried again after 1, 2, 4, 8 s (MAX_ATTEMPTS),
                       then the image's status is FAILED with a failure code.

A destination named in the `replication_remotes` setting is another installation (beyond
ECR): the image goes there over the OCI push protocol (blobs it lacks, the images an index
lists, the manifest under each tag), logged in with GetAuthorizationToken and the key given;
deletes and tag removals too with deleteReplication. That installation's own policies decide
what the key may do; an unreachable or busy one is retried, then DESTINATION_UNAVAILABLE.

A replica is not replicated again (ECR replicates a push once, not along chains of rules).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ecrd.auth.authorizer import AccessDenied, Authorizer, Origin, Target
from ecrd.auth.principals import root_of
from ecrd.errors import (
    BlobNotFound,
    ManifestReferenced,
    ParameterInvalid,
    TagImmutable,
)
from ecrd.metadata.records import Manifest, Registry, Repository, utcnow
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.replication import (
    COMPLETE,
    FAILED,
    Replication,
    ReplicationStore,
)
from ecrd.registry.blobs import BlobService
from ecrd.registry.images import ImageService
from ecrd.registry.manifests import ManifestService
from ecrd.registry.repositories import RepositoryService, repository_arn
from ecrd.remote.pusher import RemoteError, RemotePusher
from ecrd.settings import ReplicationRemote
from ecrd.upstream.ecr_login import AwsCredentials, EcrLogin

logger = logging.getLogger("ecrd.replication")

# ECR's quota: destinations across all rules of a registry.
MAX_DESTINATIONS = 25
MAX_ATTEMPTS = 5
# How many queued images one pass reads at once.
BATCH = 50
# An index of indexes of ... is followed this deep at most.
MAX_NESTING = 4

# Failure codes in DescribeImageReplicationStatus (ECR documents none of its own).
ACCESS_DENIED = "ACCESS_DENIED"  # the destination's policies do not allow the source account
TAG_IMMUTABLE = "TAG_IMMUTABLE"  # an immutable tag in the destination names another image
IMAGE_REFERENCED = "IMAGE_REFERENCED"  # a delete the destination refuses: an index lists it
SOURCE_CHANGED = "SOURCE_CHANGED"  # the image went from the source while being read
DESTINATION_UNAVAILABLE = "DESTINATION_UNAVAILABLE"  # another installation out of reach, busy
DESTINATION_REFUSED = "DESTINATION_REFUSED"  # another installation refused the key or image
INTERNAL_ERROR = "INTERNAL_ERROR"  # anything else, after MAX_ATTEMPTS


class ReplicationFailed(Exception):
    """One image could not be replicated to one destination: `code` says why; `retry` whether
    another attempt may succeed."""

    def __init__(self, code: str, detail: str, retry: bool = False) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.retry = retry


def check_configuration(registry: Registry, configuration: Mapping[str, Any]) -> dict[str, Any]:
    """ECR's rules on a replication configuration (the model has checked the shapes): each
    rule has a destination, none twice; no destination is the source registry itself; at
    most 25 destinations across the rules. Returns it as it is stored."""
    rules = list(configuration.get("rules") or ())
    seen: set[tuple[str, str]] = set()
    for position, rule in enumerate(rules, start=1):
        destinations = rule.get("destinations") or []
        if not destinations:
            raise ParameterInvalid(
                f"Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: "
                f"'rule {position} has no destinations'"
            )
        in_rule: set[tuple[str, str]] = set()
        for destination in destinations:
            key = (destination["registryId"], destination["region"])
            if key == (registry.account_id, registry.region):
                raise ParameterInvalid(
                    "Invalid parameter at 'replicationConfiguration' failed to satisfy "
                    f"constraint: 'a destination cannot be the source registry "
                    f"({registry.account_id} in {registry.region})'"
                )
            if key in in_rule:
                raise ParameterInvalid(
                    "Invalid parameter at 'replicationConfiguration' failed to satisfy "
                    f"constraint: 'rule {position} names destination {key[0]} in {key[1]} "
                    "more than once'"
                )
            in_rule.add(key)
        seen |= in_rule
    if len(seen) > MAX_DESTINATIONS:
        raise ParameterInvalid(
            "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: "
            f"'a registry replicates to at most {MAX_DESTINATIONS} destinations, not "
            f"{len(seen)}'"
        )
    kept = []
    for rule in rules:
        entry: dict[str, Any] = {
            "destinations": [
                {"region": item["region"], "registryId": item["registryId"]}
                for item in rule["destinations"]
            ]
        }
        if rule.get("repositoryFilters"):
            entry["repositoryFilters"] = [
                {"filter": item["filter"], "filterType": item["filterType"]}
                for item in rule["repositoryFilters"]
            ]
        if rule.get("deleteReplication") is not None:
            entry["deleteReplication"] = {"enabled": bool(rule["deleteReplication"]["enabled"])}
        kept.append(entry)
    return {"rules": kept}


@dataclass(frozen=True)
class Outcome:
    """What one pass over the queue did."""

    replicated: int = 0
    deleted: int = 0
    failed: int = 0
    retried: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "replicated": self.replicated,
            "deleted": self.deleted,
            "failed": self.failed,
            "retried": self.retried,
        }


class ReplicationService:
    def __init__(
        self,
        registries: RegistryStore,
        store: ReplicationStore,
        repositories: RepositoryService,
        manifests: ManifestService,
        images: ImageService,
        blobs: BlobService,
        authorizer: Authorizer,
        remotes: Mapping[str, ReplicationRemote] | None = None,
    ) -> None:
        self._registries = registries
        self._store = store
        self._repositories = repositories
        self._manifests = manifests
        self._images = images
        self._blobs = blobs
        self._authorizer = authorizer
        # Destinations that are other installations (`<registryId>/<region>`), and a pusher
        # for each, made at its first use and kept (its login token with it).
        self._remotes = dict(remotes or {})
        self._pushers: dict[str, RemotePusher] = {}

    async def configuration(self, registry: Registry) -> dict[str, Any]:
        """The registry's replication configuration; no rules when none was put."""
        found = await self._store.configuration(registry.id) if registry.is_stored else None
        return found or {"rules": []}

    async def put_configuration(
        self, registry: Registry, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        checked = check_configuration(registry, configuration)
        registry = await self._registries.store(registry)
        await self._store.set_configuration(registry.id, checked)
        return checked

    async def of_image(
        self, registry: Registry, repository: Repository, digest: str
    ) -> list[Replication]:
        """The image's replication to each destination (none for an image pushed before a
        rule covered it)."""
        return await self._store.of_image(registry.id, repository.name, digest)

    async def backlog(self) -> tuple[int, float]:
        """How many images wait to be replicated, and the age in seconds of the oldest."""
        count, oldest = await self._store.backlog()
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        return count, age

    async def run_due(self, deadline_seconds: float) -> Outcome:
        """Replicate what is queued and due, oldest change first, until nothing is due or
        `deadline_seconds` have passed."""
        outcome = Outcome()
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            batch = await self._store.due(utcnow(), BATCH)
            if not batch:
                break
            for replication in batch:
                if time.monotonic() >= deadline:
                    break
                outcome = await self._one(replication, outcome)
        return outcome

    async def _one(self, replication: Replication, outcome: Outcome) -> Outcome:
        try:
            deleted = await self._replicate(replication)
        except ReplicationFailed as failure:
            return await self._failed(replication, failure, outcome)
        except Exception as error:  # one image's failure must not stop the queue behind it
            logger.warning(
                "replication of %s@%s failed unexpectedly",
                replication.repository_name, replication.digest, exc_info=True,
            )  # fmt: skip
            internal = ReplicationFailed(INTERNAL_ERROR, str(error)[:300], retry=True)
            return await self._failed(replication, internal, outcome)
        if deleted:
            await self._store.drop(replication)
            return _add(outcome, deleted=1)
        await self._store.finish(replication, COMPLETE, None)
        return _add(outcome, replicated=1)

    async def _failed(
        self, replication: Replication, failure: ReplicationFailed, outcome: Outcome
    ) -> Outcome:
        logger.info(
            "replication of %s@%s to %s in %s: %s (attempt %d)",
            replication.repository_name,
            replication.digest,
            replication.destination_account,
            replication.destination_region,
            failure,
            replication.attempts + 1,
        )
        if failure.retry and replication.attempts + 1 < MAX_ATTEMPTS:
            wait = timedelta(seconds=2**replication.attempts)
            await self._store.retry(replication, utcnow() + wait, failure.code)
            return _add(outcome, retried=1)
        await self._store.finish(replication, FAILED, failure.code)
        return _add(outcome, failed=1)

    async def close(self) -> None:
        for pusher in self._pushers.values():
            await pusher.aclose()
        self._pushers.clear()

    async def _replicate(self, replication: Replication) -> bool:
        """Make the destination match the source for one image; True when that meant
        deleting the destination's copy (or finding nothing to delete)."""
        source_registry = await self._registries.get(
            replication.source_account, replication.source_region
        )
        source = await self._repositories.lookup(source_registry, replication.repository_name)
        manifest = None
        if source is not None:
            manifest = await self._images.find(source, None, replication.digest)
        pusher = self._pusher_for(replication)
        if pusher is not None:
            try:
                return await self._replicate_remote(replication, pusher, source, manifest)
            except RemoteError as error:
                code = DESTINATION_UNAVAILABLE if error.retry else DESTINATION_REFUSED
                raise ReplicationFailed(code, str(error), retry=error.retry) from None
        destination_registry = await self._registries.get(
            replication.destination_account, replication.destination_region
        )
        name = replication.repository_name
        existing = await self._repositories.lookup(destination_registry, name)
        if source is None or manifest is None:
            if not replication.delete_replication or existing is None:
                return True
            await self._authorize(replication, destination_registry, existing)
            try:
                await self._images.delete_by_digest(existing, replication.digest, replicate=False)
            except ManifestReferenced as error:
                raise ReplicationFailed(IMAGE_REFERENCED, error.message, retry=True) from None
            return True
        await self._authorize(replication, destination_registry, existing)
        destination = existing or await self._repositories.for_replication(
            destination_registry, name
        )
        summaries = await self._images.describe(source, [replication.digest])
        if not summaries:
            raise ReplicationFailed(SOURCE_CHANGED, "the image went while being read", retry=True)
        tags = summaries[0].tags
        await self._copy(source, manifest, destination, tags, depth=0)
        if replication.delete_replication:
            await self._drop_other_tags(destination, replication.digest, tags)
        return False

    def _pusher_for(self, replication: Replication) -> RemotePusher | None:
        key = f"{replication.destination_account}/{replication.destination_region}"
        remote = self._remotes.get(key)
        if remote is None:
            return None
        # The operator's key for that installation serves only the source accounts named for
        # it (by default the destination's own): another tenant may not push with it.
        allowed = remote.source_accounts or (replication.destination_account,)
        if replication.source_account not in allowed:
            raise ReplicationFailed(
                ACCESS_DENIED,
                f"account {replication.source_account} may not replicate to {key} (not in "
                "its source_accounts)",
            )
        pusher = self._pushers.get(key)
        if pusher is None:
            login = EcrLogin(
                remote.url,
                region=replication.destination_region,
                credentials=AwsCredentials(
                    remote.access_key_id, remote.secret_access_key.get_secret_value()
                ),
            )
            pusher = self._pushers[key] = RemotePusher(remote.url, login)
        return pusher

    async def _replicate_remote(
        self,
        replication: Replication,
        pusher: RemotePusher,
        source: Repository | None,
        manifest: Manifest | None,
    ) -> bool:
        """The same for a destination in another installation, over the OCI protocol: its
        own policies decide what the key may do there."""
        name = replication.repository_name
        if source is None or manifest is None:
            if replication.delete_replication:
                await pusher.delete(name, replication.digest)
            return True
        summaries = await self._images.describe(source, [replication.digest])
        if not summaries:
            raise ReplicationFailed(SOURCE_CHANGED, "the image went while being read", retry=True)
        tags = summaries[0].tags
        await self._push(source, manifest, pusher, tags, depth=0)
        if replication.delete_replication:
            for tag in await pusher.tags_pointing(name, replication.digest):
                if tag not in tags:
                    await pusher.delete(name, tag)
        return False

    async def _push(
        self,
        source: Repository,
        manifest: Manifest,
        pusher: RemotePusher,
        tags: tuple[str, ...],
        depth: int,
    ) -> None:
        """The manifest pushed under each of `tags` (by digest when it has none), after the
        images it lists and the blobs the remote lacks."""
        push = self._manifests.prepare(
            manifest.payload, manifest.media_type, tags, manifest.digest, infer_media_type=True
        )
        name = source.name
        for child_digest in sorted(push.manifest.child_digests):
            child = await self._images.find(source, None, child_digest)
            if child is not None and depth < MAX_NESTING:
                await self._push(source, child, pusher, (), depth + 1)
        for digest in sorted(push.manifest.blob_digests):
            if await pusher.has_blob(name, digest):
                continue
            try:
                blob = await self._blobs.get(source, digest)
            except BlobNotFound:
                continue  # the source lacks it too (see `_copy`)
            await pusher.push_blob(name, digest, blob.size, self._blobs.read(blob, 0, blob.size))
        for reference in tags or (manifest.digest,):
            await pusher.put_manifest(name, reference, manifest.media_type, manifest.payload)

    async def _authorize(
        self, replication: Replication, registry: Registry, existing: Repository | None
    ) -> None:
        """Across accounts the destination must allow the source account's root, as ECR's
        registry policies grant it; within one account nothing is asked."""
        if replication.destination_account == replication.source_account:
            return
        actions = ["ecr:ReplicateImage"]
        if existing is None:
            actions.append("ecr:CreateRepository")
        target = Target(registry, repository_arn(registry, replication.repository_name), existing)
        try:
            await self._authorizer.check(
                root_of(replication.source_account), actions, target, Origin(None, True)
            )
        except AccessDenied as denied:
            raise ReplicationFailed(ACCESS_DENIED, denied.message) from None

    async def _copy(
        self,
        source: Repository,
        manifest: Manifest,
        destination: Repository,
        tags: tuple[str, ...],
        depth: int,
    ) -> None:
        """The manifest into `destination` with `tags`, after the images it lists and the
        blobs it references. The replica has what the source has: a blob or image the source
        lacks (a pull-through cache fetches blobs when asked for; `strict_references` off
        takes manifests without their layers) is missing from the replica too."""
        push = self._manifests.prepare(
            manifest.payload, manifest.media_type, tags, manifest.digest, infer_media_type=True
        )
        for child_digest in sorted(push.manifest.child_digests):
            if depth >= MAX_NESTING:
                break
            child = await self._images.find(source, None, child_digest)
            if (
                child is not None
                and await self._images.find(destination, None, child_digest) is None
            ):
                await self._copy(source, child, destination, (), depth + 1)
        await asyncio.gather(
            *(
                self._blobs.mount(destination, source, digest)
                for digest in sorted(push.manifest.blob_digests)
            )
        )
        try:
            await self._manifests.store_replica(destination, push)
        except TagImmutable as error:
            raise ReplicationFailed(TAG_IMMUTABLE, error.message) from None

    async def _drop_other_tags(
        self, destination: Repository, digest: str, kept: tuple[str, ...]
    ) -> None:
        summaries = await self._images.describe(destination, [digest])
        for tag in summaries[0].tags if summaries else ():
            if tag not in kept:
                await self._manifests.untag_replica(destination, tag)


def _add(outcome: Outcome, **more: int) -> Outcome:
    values = outcome.counts()
    for name, value in more.items():
        values[name] += value
    return Outcome(**values)
