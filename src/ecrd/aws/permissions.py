"""What an API call must be allowed to do: its IAM action and the resources it touches.

The action is `<service>:<Operation>` (`ecr:PutImage`). The resource follows the ECR Service
Authorization Reference: the repository a call names (`repositoryName`, each of
`repositoryNames`, or `resourceArn`); every repository of the registry for a listing without
names; "*" for account-level actions such as GetAuthorizationToken and the registry settings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ecrd.auth.authorizer import Origin, Target
from ecrd.aws.calls import Call
from ecrd.registry.repositories import repository_arn

_REPOSITORY_ARN = re.compile(r"^arn:aws:(ecr|ecr-public):([a-z0-9-]*):(\d{12}):repository/(.+)$")


def action_of(call: Call) -> str:
    return f"{call.operation.service_model.signing_name}:{call.operation.name}"


async def targets_of(call: Call, params: dict[str, Any]) -> list[Target]:
    """Every resource the call acts on; each must be allowed."""
    if "resourceArn" in params:
        return [await _arn_target(call, params["resourceArn"])]
    registry = await call.registry(params)
    names: Sequence[str] = []
    if "repositoryName" in params:
        names = [params["repositoryName"]]
    elif params.get("repositoryNames"):
        names = params["repositoryNames"]
    elif "repositoryNames" in call.operation.input_shape.members:
        return [Target(registry, repository_arn(registry, "*"))]
    if not names:
        return [Target(registry, "*")]
    targets = []
    for name in dict.fromkeys(names):
        repository = await call.services.repositories.lookup(registry, name)
        targets.append(Target(registry, repository_arn(registry, name), repository))
    return targets


async def _arn_target(call: Call, arn: str) -> Target:
    match = _REPOSITORY_ARN.match(arn)
    if match is None:
        # The operation answers the malformed ARN; authorize against the caller's registry.
        registry = await call.registry({})
        return Target(registry, arn)
    if match.group(1) == "ecr-public":
        registry = await call.registry({"registryId": match.group(3)}, "public")
    else:
        registry = await call.services.registries.get(match.group(3), match.group(2))
    repository = await call.services.repositories.lookup(registry, match.group(4))
    return Target(registry, arn, repository)


def request_tags(params: dict[str, Any]) -> dict[str, str | list[str]]:
    """aws:RequestTag/<key> and aws:TagKeys for calls that set or remove resource tags."""
    keys: dict[str, str | list[str]] = {}
    tags = params.get("tags")
    if isinstance(tags, list):
        for tag in tags:
            keys[f"aws:RequestTag/{tag['Key']}"] = tag.get("Value", "")
        keys["aws:TagKeys"] = [tag["Key"] for tag in tags]
    if isinstance(params.get("tagKeys"), list):
        keys["aws:TagKeys"] = list(params["tagKeys"])
    return keys


async def authorize_call(call: Call, params: dict[str, Any], origin: Origin) -> None:
    """AccessDenied unless the caller may do this call to every resource it touches."""
    actions = (action_of(call),)
    for target in await targets_of(call, params):
        await call.services.authorizer.check(call.principal, actions, target, origin)
