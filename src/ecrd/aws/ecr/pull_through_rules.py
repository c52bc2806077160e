"""Pull-through cache rules: Create, Describe, Update, Delete and Validate."""

from __future__ import annotations

from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.metadata.pull_through_rules import PullThroughRule
from ecrd.metadata.records import Registry

DEFAULT_PAGE_SIZE = 100


def _rule_output(registry: Registry, rule: PullThroughRule) -> dict[str, Any]:
    output: dict[str, Any] = {
        "ecrRepositoryPrefix": rule.prefix,
        "upstreamRegistryUrl": rule.upstream_url,
        "createdAt": rule.created_at,
        "registryId": registry.account_id,
        "upstreamRegistry": rule.upstream_registry,
        "upstreamRepositoryPrefix": rule.upstream_prefix,
    }
    if rule.credential_arn is not None:
        output["credentialArn"] = rule.credential_arn
    if rule.custom_role_arn is not None:
        output["customRoleArn"] = rule.custom_role_arn
    return output


async def create_pull_through_cache_rule(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params, kind="private")
    rule = await call.services.pull_through_rules.create(
        registry,
        params["ecrRepositoryPrefix"],
        params["upstreamRegistryUrl"],
        params.get("upstreamRegistry"),
        params.get("credentialArn"),
        params.get("customRoleArn"),
        params.get("upstreamRepositoryPrefix"),
    )
    return _rule_output(registry, rule)


async def describe_pull_through_cache_rules(call: Call, params: dict[str, Any]
                                            ) -> dict[str, Any]:  # fmt: skip
    registry = await call.registry(params, kind="private")
    prefixes = params.get("ecrRepositoryPrefixes") or None
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribePullThroughCacheRules:{registry.id}:{sorted(prefixes or [])}"
    after = decode_token(scope, params.get("nextToken"), str)
    found = await call.services.pull_through_rules.page(registry, prefixes, after, limit + 1)
    output: dict[str, Any] = {
        "pullThroughCacheRules": [
            {**_rule_output(registry, rule), "updatedAt": rule.updated_at} for rule in found[:limit]
        ]
    }
    if len(found) > limit:
        output["nextToken"] = encode_token(scope, found[limit - 1].prefix)
    return output


async def update_pull_through_cache_rule(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params, kind="private")
    rule = await call.services.pull_through_rules.update(
        registry,
        params["ecrRepositoryPrefix"],
        params.get("credentialArn"),
        params.get("customRoleArn"),
    )
    output = _rule_output(registry, rule)
    output["updatedAt"] = rule.updated_at
    for member in ("upstreamRegistryUrl", "createdAt", "upstreamRegistry"):
        output.pop(member)  # not in UpdatePullThroughCacheRule's answer
    return output


async def delete_pull_through_cache_rule(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params, kind="private")
    rule = await call.services.pull_through_rules.delete(registry, params["ecrRepositoryPrefix"])
    output = _rule_output(registry, rule)
    output.pop("upstreamRegistry")  # not in DeletePullThroughCacheRule's answer
    return output


async def validate_pull_through_cache_rule(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Whether the rule reaches its upstream: its secret read and parsed, its credentials
    accepted (ECR's check)."""
    registry = await call.registry(params, kind="private")
    rule = await call.services.pull_through_rules.get(registry, params["ecrRepositoryPrefix"])
    failure = await call.services.pull_through.validate(registry, rule)
    output = _rule_output(registry, rule)
    for member in ("createdAt", "upstreamRegistry"):
        output.pop(member)  # not in ValidatePullThroughCacheRule's answer
    output["isValid"] = failure is None
    if failure is not None:
        output["failure"] = failure
    return output
