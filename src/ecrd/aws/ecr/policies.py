"""Repository policies: stored and validated here; enforced by the authorization layer."""

from __future__ import annotations

import logging
from typing import Any

from ecrd.aws.calls import Call
from ecrd.errors import PolicyInvalid

# ECR's whole answer to a policy it will not take: the reason is not part of it, so the server
# log keeps it (at debug) under the request id the caller sees in x-amzn-RequestId.
INVALID_REPOSITORY_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid repository policy provided'"
)
logger = logging.getLogger("ecrd.aws")


async def get_repository_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    policy_text = await call.services.repositories.policy(registry, repository)
    return _policy_output(registry.account_id, repository.name, policy_text)


async def set_repository_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    try:
        policy_text = await call.services.repositories.set_policy(repository, params["policyText"])
    except PolicyInvalid as error:
        logger.debug(
            "request %s: repository policy of %s refused: %s",
            call.request_id,
            repository.arn,
            error.message,
        )
        raise PolicyInvalid(INVALID_REPOSITORY_POLICY) from None
    return _policy_output(registry.account_id, repository.name, policy_text)


async def delete_repository_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    policy_text = await call.services.repositories.delete_policy(registry, repository)
    return _policy_output(registry.account_id, repository.name, policy_text)


def _policy_output(registry_id: str, repository_name: str, policy_text: str) -> dict[str, Any]:
    return {
        "registryId": registry_id,
        "repositoryName": repository_name,
        "policyText": policy_text,
    }
