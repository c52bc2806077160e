"""Pull-time update exclusions: principals of a registry whose pulls do not move an image's
last recorded pull time (ECR's answer to scanners and CI pulling everything).

The list is read on the pull path, so each process keeps every registry's list for a few
seconds (CACHE_SECONDS) instead of asking the database on each pull: a change made through
this process applies here at once, one made through another process within those seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from ecrd.auth.principals import Principal
from ecrd.errors import ExclusionNotFound
from ecrd.metadata.pull_time_exclusions import PullTimeExclusionStore
from ecrd.metadata.records import Registry
from ecrd.metadata.registries import RegistryStore

# ECR: "You can configure up to 100 exclusions per account" (per registry here: one per
# account and region, as everything else of a registry).
MAX_EXCLUSIONS = 100
CACHE_SECONDS = 5.0
# Registries whose lists one process remembers at once; past it, it forgets them all.
MAX_CACHED_REGISTRIES = 10_000


class PullTimeExclusionService:
    def __init__(
        self,
        store: PullTimeExclusionStore,
        registries: RegistryStore,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._store = store
        self._registries = registries
        self._cache_seconds = cache_seconds
        # registry id -> (monotonic time the entry expires, the excluded ARNs)
        self._cached: dict[int, tuple[float, frozenset[str]]] = {}
        # One read per registry at a time, shared by every pull that waits for it.
        self._loading: dict[int, asyncio.Future[frozenset[str]]] = {}
        # Bumped by each change here, so a read begun before it does not cache the old list.
        self._generations: dict[int, int] = {}

    async def register(self, registry: Registry, principal_arn: str) -> datetime:
        """Exclude a principal's pulls; when it was excluded. ExclusionAlreadyExists,
        TooManyExclusions (MAX_EXCLUSIONS)."""
        registry = await self._registries.store(registry)
        created_at = await self._store.add(registry.id, principal_arn, MAX_EXCLUSIONS)
        self._forget(registry.id)
        return created_at

    async def deregister(self, registry: Registry, principal_arn: str) -> None:
        """Record the principal's pulls again; ExclusionNotFound when it was not excluded."""
        if not registry.is_stored or not await self._store.remove(registry.id, principal_arn):
            raise ExclusionNotFound(f"{principal_arn} is not excluded")
        self._forget(registry.id)

    async def page(
        self, registry: Registry, after: str | None, limit: int
    ) -> tuple[list[str], bool]:
        """A page of the excluded ARNs in byte order after `after`, and whether more follow."""
        if not registry.is_stored:
            return [], False
        found = await self._store.page(registry.id, after, limit + 1)
        return found[:limit], len(found) > limit

    def cached(self, registry_id: int, principal: Principal) -> bool | None:
        """Whether the principal's pulls in the registry are excluded, from memory alone;
        None when this process must read the list first (`is_excluded`)."""
        if principal.arn is None or principal.user_name is None:
            # Anonymous callers and an account's root: no exclusion can name them (ECR takes
            # only user and role ARNs).
            return False
        entry = self._cached.get(registry_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return principal.arn in entry[1]

    async def is_excluded(self, registry_id: int, principal: Principal) -> bool:
        known = self.cached(registry_id, principal)
        if known is not None:
            return known
        return principal.arn in await self._load(registry_id)

    async def _load(self, registry_id: int) -> frozenset[str]:
        pending = self._loading.get(registry_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read(registry_id))
            self._loading[registry_id] = pending

            def done(future: asyncio.Future[frozenset[str]]) -> None:
                if self._loading.get(registry_id) is future:
                    del self._loading[registry_id]

            pending.add_done_callback(done)
        # Shielded: a pull whose client goes away must not cancel the read others wait for.
        return await asyncio.shield(pending)

    async def _read(self, registry_id: int) -> frozenset[str]:
        generation = self._generations.get(registry_id, 0)
        arns = await self._store.all(registry_id, MAX_EXCLUSIONS)
        if self._generations.get(registry_id, 0) == generation:
            if len(self._cached) >= MAX_CACHED_REGISTRIES:
                self._cached.clear()
            self._cached[registry_id] = (time.monotonic() + self._cache_seconds, arns)
        return arns

    def _forget(self, registry_id: int) -> None:
        self._cached.pop(registry_id, None)
        self._loading.pop(registry_id, None)
        if len(self._generations) >= MAX_CACHED_REGISTRIES:
            self._generations.clear()
        self._generations[registry_id] = self._generations.get(registry_id, 0) + 1
