"""Replication backfills: replicate a registry's existing images to one destination of its
replication configuration (ECR replicates only what is pushed after a rule exists; a backfill
covers the rest).

    start      the destination must be in the configuration; one backfill under way per
               destination region, at most 10 per registry (metadata.replication_backfills)
    advance    the `replication` job's part: a PREPARING backfill lists every image (and tag)
               of each repository the rules send to the destination, an index's images going
               with it; then its images are queued for replication like pushes, and each
               outcome the replication job reaches (retries included) becomes its result;
               a STOPPING one ends STOPPED; ended ones are dropped after 90 days
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ecrd.errors import ParameterInvalid
from ecrd.metadata.records import Registry, utcnow
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.replication import COMPLETE, FAILED, ReplicationStore, destinations_for
from ecrd.metadata.replication_backfills import (
    IN_PROGRESS,
    PENDING,
    PREPARING,
    STOPPED,
    STOPPING,
    Backfill,
    BackfillResult,
    BackfillStore,
)
from ecrd.metadata.repositories import RepositoryStore

# How long ended backfills are kept, as on ECR.
RETENTION = timedelta(days=90)
# Ended backfills past RETENTION are looked for this often (per process).
CLEANUP_SECONDS = 3600.0
# Results read (and images queued) at a time.
BATCH = 500
# The failure codes of a backfill and of its results (ECR documents none of its own).
DESTINATION_NOT_CONFIGURED = "DESTINATION_NOT_CONFIGURED"
IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"


@dataclass
class Advance:
    """What one look at the backfills did."""

    prepared: int = 0
    queued: int = 0
    recorded: int = 0
    ended: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.prepared or self.queued or self.recorded or self.ended)


class BackfillService:
    def __init__(
        self,
        registries: RegistryStore,
        backfills: BackfillStore,
        replications: ReplicationStore,
        repositories: RepositoryStore,
    ) -> None:
        self._registries = registries
        self._backfills = backfills
        self._replications = replications
        self._repositories = repositories
        # Called when a backfill starts, so that the job runs soon (set by the app).
        self.on_started: Callable[[], None] | None = None
        self._next_cleanup = 0.0

    async def start(self, registry: Registry, destination: tuple[str, str]) -> Backfill:
        configuration = (
            await self._replications.configuration(registry.id) if registry.is_stored else None
        )
        if destination not in _all_destinations(configuration):
            account, region = destination
            raise ParameterInvalid(
                f"The destination {account} in {region} is not in the registry's replication "
                "configuration"
            )
        registry = await self._registries.store(registry)
        backfill = await self._backfills.start(str(uuid.uuid4()), registry.id, destination)
        if self.on_started is not None:
            self.on_started()
        return backfill

    async def stop(self, registry: Registry, backfill_id: str) -> Backfill:
        return await self._backfills.request_stop(registry.id, backfill_id)

    async def get(self, registry: Registry, backfill_id: str) -> Backfill:
        return await self._backfills.get(registry.id, backfill_id)

    async def page(
        self, registry: Registry, after: tuple[datetime, str] | None, limit: int
    ) -> list[Backfill]:
        return await self._backfills.page(registry.id, after, limit)

    async def results(
        self, backfill: Backfill, status: str | None, after: int | None, limit: int
    ) -> list[BackfillResult]:
        return await self._backfills.results(backfill.id, status, after, limit)

    async def advance(self, deadline_seconds: float) -> Advance:
        """Move every backfill under way on, within `deadline_seconds`."""
        done = Advance()
        deadline = time.monotonic() + deadline_seconds
        for backfill in await self._backfills.under_way():
            if time.monotonic() >= deadline:
                break
            if backfill.status == STOPPING:
                await self._backfills.end(backfill, STOPPED)
                done.ended += 1
            elif backfill.status == PREPARING:
                await self._prepare(backfill, done)
            elif backfill.status == IN_PROGRESS:
                await self._progress(backfill, done)
        if time.monotonic() >= self._next_cleanup:
            await self._backfills.drop_ended_before(utcnow() - RETENTION)
            self._next_cleanup = time.monotonic() + CLEANUP_SECONDS
        return done

    async def _prepare(self, backfill: Backfill, done: Advance) -> None:
        destination = (backfill.destination_account, backfill.destination_region)
        configuration = await self._replications.configuration(backfill.registry_id)
        if destination not in _all_destinations(configuration):
            await self._backfills.end(backfill, FAILED, DESTINATION_NOT_CONFIGURED)
            done.ended += 1
            return
        entries: list[tuple[str, str, str | None]] = []
        after: str | None = None
        while True:
            page = await self._repositories.page(backfill.registry_id, after, 100)
            for repository in page:
                if destination in destinations_for(configuration or {}, repository.name):
                    for digest, tag in await self._backfills.images_of(repository.id):
                        entries.append((repository.name, digest, tag))
            if len(page) < 100:
                break
            after = page[-1].name
        if await self._backfills.set_results(backfill, entries):
            done.prepared += 1
            if not entries:
                await self._backfills.end(backfill, COMPLETE, from_status=IN_PROGRESS)
                done.ended += 1

    async def _progress(self, backfill: Backfill, done: Advance) -> None:
        destination = (backfill.destination_account, backfill.destination_region)
        results = await self._backfills.pending(backfill.id, BATCH)
        if not results:
            await self._backfills.end(backfill, COMPLETE, from_status=IN_PROGRESS)
            done.ended += 1
            return
        waiting = [result for result in results if result.status == PENDING]
        if waiting:
            # Marked first, queued after: a stop that comes between leaves nothing queued
            # for results it dropped (ECR finishes only what is under way).
            if not await self._backfills.mark_queued(backfill.id, [r.position for r in waiting]):
                return
            configuration = await self._replications.configuration(backfill.registry_id) or {}
            for name, digest in dict.fromkeys((r.repository_name, r.digest) for r in waiting):
                deletes = destinations_for(configuration, name).get(destination, False)
                await self._replications.queue(
                    backfill.registry_id, name, digest, destination, deletes
                )
            done.queued += len(waiting)
        queued = [result for result in results if result.status != PENDING]
        if not queued:
            return
        by_image: dict[tuple[str, str], list[int]] = defaultdict(list)
        for result in queued:
            by_image[(result.repository_name, result.digest)].append(result.position)
        outcomes = await self._replications.outcomes(
            backfill.registry_id, destination, list(by_image)
        )
        for image, positions in by_image.items():
            status, code = outcomes.get(image, (FAILED, IMAGE_NOT_FOUND))
            if status == COMPLETE:
                await self._backfills.record(backfill.id, positions, None)
            elif status == FAILED:
                await self._backfills.record(backfill.id, positions, code or IMAGE_NOT_FOUND)
            else:
                continue  # still being replicated (or waiting for a retry)
            done.recorded += len(positions)


def _all_destinations(configuration: dict[str, Any] | None) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for rule in (configuration or {}).get("rules") or ():
        for destination in rule.get("destinations") or ():
            found.add((destination["registryId"], destination["region"]))
    return found
