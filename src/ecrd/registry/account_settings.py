"""ECR's account settings: what each is, the values it takes, its default, and what reads it.

    REGISTRY_POLICY_SCOPE    V2 (default): the registry policy governs every ECR action in the
                             registry; V1: only replication and pull-through-cache actions
                             (ecr:ReplicateImage, ecr:BatchImportUpstreamImage,
                             ecr:CreateRepository), and PutRegistryPolicy takes no other
    BLOB_MOUNTING            ENABLED (ecrd's default, see docs/design.md) or DISABLED: whether a
                             push may mount a layer from another repository of the registry
    BASIC_SCAN_TYPE_VERSION  AWS_NATIVE (default) or CLAIR: the basic scanner's generation

Settings belong to a registry (an account in one region), as on ECR.
"""

from __future__ import annotations

from ecrd.errors import ParameterInvalid
from ecrd.metadata.account_settings import AccountSettingStore
from ecrd.metadata.records import Registry
from ecrd.metadata.registries import POLICY_SCOPE_SETTING, RegistryStore

REGISTRY_POLICY_SCOPE = POLICY_SCOPE_SETTING
BLOB_MOUNTING = "BLOB_MOUNTING"
BASIC_SCAN_TYPE_VERSION = "BASIC_SCAN_TYPE_VERSION"
# Each setting's values, its default first.
VALUES: dict[str, tuple[str, ...]] = {
    BASIC_SCAN_TYPE_VERSION: ("AWS_NATIVE", "CLAIR"),
    REGISTRY_POLICY_SCOPE: ("V2", "V1"),
    BLOB_MOUNTING: ("ENABLED", "DISABLED"),
}


def check_name(name: str) -> str:
    if name not in VALUES:
        raise ParameterInvalid(
            "Invalid parameter at 'name' failed to satisfy constraint: 'Member must satisfy "
            f"enum value set: [{', '.join(VALUES)}]'"
        )
    return name


class AccountSettingService:
    def __init__(self, registries: RegistryStore, store: AccountSettingStore) -> None:
        self._registries = registries
        self._store = store

    async def get(self, registry: Registry, name: str) -> str:
        """The setting's value in the registry: the one put, else the default."""
        check_name(name)
        value = await self._store.get(registry.id, name) if registry.is_stored else None
        return value or VALUES[name][0]

    async def put(self, registry: Registry, name: str, value: str) -> str:
        allowed = VALUES[check_name(name)]
        if value not in allowed:
            raise ParameterInvalid(
                f"Invalid parameter at 'value' failed to satisfy constraint: 'The value of "
                f"{name} must be one of: {', '.join(allowed)}'"
            )
        registry = await self._registries.store(registry)
        await self._store.put(registry.id, name, value)
        return value

    async def mounts_allowed(self, registry: Registry) -> bool:
        return await self.get(registry, BLOB_MOUNTING) == "ENABLED"
