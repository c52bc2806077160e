"""Registry-wide operations: the registry policy and the registry's description."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.errors import PolicyInvalid
from ecrd.metadata.records import Registry
from ecrd.registry.policies import check_resource_policy


async def describe_registry(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    # Replication is not a feature of ecrd yet, so no registry has rules.
    return {"registryId": registry.account_id, "replicationConfiguration": {"rules": []}}


async def get_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    return {"registryId": registry.account_id, "policyText": await _policy(call, registry)}


async def put_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    try:
        policy_text = check_resource_policy(params["policyText"])
    except PolicyInvalid as error:
        raise PolicyInvalid(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            f"'Invalid registry policy provided: {error.message}'"
        ) from None
    await call.services.registries.set_policy(registry.id, policy_text)
    return {"registryId": registry.account_id, "policyText": policy_text}


async def delete_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    policy_text = await _policy(call, registry)
    await call.services.registries.set_policy(registry.id, None)
    return {"registryId": registry.account_id, "policyText": policy_text}


async def _policy(call: Call, registry: Registry) -> str:
    policy_text = await call.services.registries.policy(registry.id)
    if policy_text is None:
        raise AwsError(
            "RegistryPolicyNotFoundException",
            f"Registry policy does not exist in the registry with id '{registry.account_id}'",
        )
    return policy_text
