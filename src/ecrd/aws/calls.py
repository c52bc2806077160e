"""What an operation receives besides its parameters: who is calling, where, and the
domain services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel  # type: ignore[import-untyped]

from ecrd.auth.principals import Principal
from ecrd.metadata.records import Registry, Repository
from ecrd.registry.services import RegistryServices
from ecrd.settings import Settings


@dataclass(frozen=True)
class Call:
    services: RegistryServices
    settings: Settings
    operation: OperationModel
    # Who signed the call, and the region of its credential scope.
    principal: Principal
    region: str
    request_id: str

    @property
    def account_id(self) -> str:
        """The caller's account: the registry a call means when it names none."""
        assert self.principal.account_id is not None  # API calls are always signed
        return self.principal.account_id

    async def registry(self, params: dict[str, Any], kind: str = "private") -> Registry:
        """The registry `registryId` names, or the caller's own in the request's region."""
        account_id = params.get("registryId") or self.account_id
        return await self.services.registries.ensure(account_id, self.region, kind)

    async def repository(self, params: dict[str, Any]) -> tuple[Registry, Repository]:
        """The registry and the repository `repositoryName` names; RepositoryNotFound if none."""
        registry = await self.registry(params)
        repository = await self.services.repositories.find(registry, params["repositoryName"])
        return registry, repository

    def registry_host(self, registry: Registry) -> str:
        return self.services.hosts.host_of(registry.account_id, registry.region)

    def registry_url(self, registry: Registry) -> str:
        return self.services.hosts.url_of(registry.account_id, registry.region)
