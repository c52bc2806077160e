"""What an API call must be allowed to do: its IAM action and the resources it touches.

The action is `<service>:<Operation>` (`ecr:PutImage`). The resource follows the ECR Service
Authorization Reference: the repository a call names (`repositoryName`, each of
`repositoryNames`, or `resourceArn`); every repository of the registry for a listing without
names; "*" for account-level actions such as GetAuthorizationToken and the registry settings.

Secrets Manager's actions (`secretsmanager:<Operation>`) act on the secret's full ARN (the ARN
the SecretId names when no such secret exists); CreateSecret on the ARN the new secret will
have, its six random characters written `??????` (as policies name them); ListSecrets on "*".
Secrets are in no registry: their target carries an unstored one of their account and region,
so no registry policy applies to them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ecrd.auth.authorizer import Origin, Target
from ecrd.aws.calls import Call
from ecrd.metadata.records import UNSTORED_ID, Registry
from ecrd.registry.repositories import repository_arn
from ecrd.registry.secrets import check_text, scope_of

_REPOSITORY_ARN = re.compile(r"^arn:aws:(ecr|ecr-public):([a-z0-9-]*):(\d{12}):repository/(.+)$")


def action_of(call: Call) -> str:
    return f"{call.operation.service_model.signing_name}:{call.operation.name}"


async def targets_of(call: Call, params: dict[str, Any]) -> list[Target]:
    """Every resource the call acts on; each must be allowed."""
    if call.operation.service_model.signing_name == "secretsmanager":
        return [await _secret_target(call, params)]
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


async def _secret_target(call: Call, params: dict[str, Any]) -> Target:
    check_text(params)  # before any of it reaches a query
    account_id, region = call.account_id, call.region
    if "SecretId" in params:
        account_id, region = scope_of(account_id, region, params["SecretId"])
        resource = await call.services.secrets.resource_arn(account_id, region, params["SecretId"])
    elif call.operation.name == "CreateSecret":
        resource = f"arn:aws:secretsmanager:{region}:{account_id}:secret:{params['Name']}-??????"
    else:
        resource = "*"
    return Target(Registry(UNSTORED_ID, account_id, region, "secretsmanager"), resource)


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
    # Secrets Manager spells them Tags and TagKeys.
    if isinstance(params.get("Tags"), list):
        for tag in params["Tags"]:
            keys[f"aws:RequestTag/{tag.get('Key', '')}"] = tag.get("Value", "")
        keys["aws:TagKeys"] = [tag.get("Key", "") for tag in params["Tags"]]
    if isinstance(params.get("TagKeys"), list):
        keys["aws:TagKeys"] = list(params["TagKeys"])
    return keys


async def authorize_call(call: Call, params: dict[str, Any], origin: Origin) -> None:
    """AccessDenied unless the caller may do this call to every resource it touches."""
    actions = (action_of(call),)
    for target in await targets_of(call, params):
        await call.services.authorizer.check(call.principal, actions, target, origin)
