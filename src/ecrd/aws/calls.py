"""What an operation receives besides its parameters: who is calling, where, and the
domain services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel

from ecrd.auth.principals import Principal
from ecrd.metadata.records import Registry, Repository
from ecrd.registry.services import RegistryServices
from ecrd.settings import Settings

PUBLIC_REGION = "us-east-1"


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

    @property
    def is_public(self) -> bool:
        """Whether this is an ECR Public call (its registries are the public ones)."""
        return bool(self.operation.service_model.signing_name == "ecr-public")

    async def registry(self, params: dict[str, Any], kind: str | None = None) -> Registry:
        """The registry `registryId` names, or the caller's own: in the request's region for
        ECR; for ECR Public, the account's one public registry (a us-east-1 service on AWS).
        It may be unstored: naming a registry creates nothing (writes store it)."""
        account_id = params.get("registryId") or self.account_id
        if kind == "public" or (kind is None and self.is_public):
            return await self.services.registries.get(account_id, PUBLIC_REGION, "public")
        return await self.services.registries.get(account_id, self.region, "private")

    async def repository(self, params: dict[str, Any]) -> tuple[Registry, Repository]:
        """The registry and the repository `repositoryName` names; RepositoryNotFound if none."""
        registry = await self.registry(params)
        repository = await self.services.repositories.find(registry, params["repositoryName"])
        return registry, repository

    def registry_host(self, registry: Registry) -> str:
        """What a repository URI starts with: the registry's host, or for a public registry
        `<public host>/<alias>`."""
        if registry.kind == "public":
            return self.services.hosts.public_prefix_of(registry)
        return self.services.hosts.host_of(registry.account_id, registry.region)

    def registry_url(self, registry: Registry) -> str:
        return self.services.hosts.url_of(registry.account_id, registry.region)
