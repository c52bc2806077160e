"""Registry-wide operations: the registry policy and the account settings (the registry's
description, with its replication rules, is in aws/ecr/replication.py)."""

from __future__ import annotations

import logging
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.errors import PolicyInvalid
from ecrd.metadata.records import Registry
from ecrd.registry.account_settings import REGISTRY_POLICY_SCOPE
from ecrd.registry.policies import check_registry_policy

# ECR's whole answer to a registry policy it will not take; the reason goes to the log (debug).
INVALID_REGISTRY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid registry policy provided'"
)
logger = logging.getLogger("ecrd.aws")


async def get_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    return {"registryId": registry.account_id, "policyText": await _policy(call, registry)}


async def put_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    scope = await call.services.account_settings.get(registry, REGISTRY_POLICY_SCOPE)
    try:
        policy_text = check_registry_policy(params["policyText"], scope)
    except PolicyInvalid as error:
        logger.debug(
            "request %s: registry policy of %s in %s refused: %s",
            call.request_id,
            registry.account_id,
            registry.region,
            error.message,
        )
        raise PolicyInvalid(INVALID_REGISTRY_POLICY) from None
    await call.services.registries.set_policy(registry, policy_text)
    return {"registryId": registry.account_id, "policyText": policy_text}


async def delete_registry_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    policy_text = await _policy(call, registry)
    await call.services.registries.set_policy(registry, None)
    return {"registryId": registry.account_id, "policyText": policy_text}


async def _policy(call: Call, registry: Registry) -> str:
    policy_text = await call.services.registries.policy(registry.id)
    if policy_text is None:
        raise AwsError(
            "RegistryPolicyNotFoundException",
            f"Registry policy does not exist in the registry with id '{registry.account_id}'",
        )
    return policy_text


async def get_account_setting(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    value = await call.services.account_settings.get(registry, params["name"])
    return {"name": params["name"], "value": value}


async def put_account_setting(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    value = await call.services.account_settings.put(registry, params["name"], params["value"])
    return {"name": params["name"], "value": value}
