"""Repository creation templates: Create, Describe, Update and Delete."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.ecr.lifecycle import invalid_policy
from ecrd.aws.ecr.policies import INVALID_REPOSITORY_POLICY
from ecrd.aws.ecr.repositories import resource_tags
from ecrd.aws.errors import AwsError
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ParameterInvalid, PolicyInvalid
from ecrd.lifecycle.policy import LifecyclePolicyInvalid
from ecrd.metadata.records import Registry
from ecrd.registry.creation_templates import CreationTemplate

DEFAULT_PAGE_SIZE = 100
# The members of a template a request may set, as the API names them.
TEMPLATE_MEMBERS = (
    "description",
    "encryptionConfiguration",
    "resourceTags",
    "imageTagMutability",
    "imageTagMutabilityExclusionFilters",
    "repositoryPolicy",
    "lifecyclePolicy",
    "appliedFor",
    "customRoleArn",
)
logger = logging.getLogger("ecrd.aws")


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    settings = {name: params[name] for name in TEMPLATE_MEMBERS if name in params}
    if "resourceTags" in settings:
        try:
            resource_tags(settings["resourceTags"])  # refuses keys AWS reserves
        except AwsError as error:  # not among these operations' errors: their generic one
            raise ParameterInvalid(error.message) from None
    if "appliedFor" in settings:
        settings["appliedFor"] = sorted(set(settings["appliedFor"]))
    return settings


async def _checked(call: Call, work: Callable[[], Awaitable[CreationTemplate]]
                   ) -> CreationTemplate:  # fmt: skip
    """Run `work`, answering the policies a template carries in ECR's words."""
    try:
        return await work()
    except PolicyInvalid as error:
        logger.debug("request %s: template policy refused: %s", call.request_id, error.message)
        raise PolicyInvalid(INVALID_REPOSITORY_POLICY) from None
    except LifecyclePolicyInvalid as error:
        raise invalid_policy(error) from None


def template_output(template: CreationTemplate) -> dict[str, Any]:
    settings = template.settings
    encryption: dict[str, Any] = {"encryptionType": settings.encryption_type}
    if settings.kms_key is not None:
        encryption["kmsKey"] = settings.kms_key
    output: dict[str, Any] = {
        "prefix": template.prefix,
        "encryptionConfiguration": encryption,
        "resourceTags": [{"Key": k, "Value": v} for k, v in template.resource_tags.items()],
        "imageTagMutability": settings.image_tag_mutability,
        "appliedFor": list(template.applied_for),
        "createdAt": template.created_at,
        "updatedAt": template.updated_at,
    }
    if settings.tag_mutability_exclusions:
        output["imageTagMutabilityExclusionFilters"] = [
            {"filterType": exclusion.filter_type, "filter": exclusion.filter}
            for exclusion in settings.tag_mutability_exclusions
        ]
    optional = {
        "description": template.description,
        "repositoryPolicy": template.repository_policy,
        "lifecyclePolicy": template.lifecycle_policy,
        "customRoleArn": template.custom_role_arn,
    }
    output.update({name: value for name, value in optional.items() if value is not None})
    return output


def _answer(registry: Registry, template: CreationTemplate) -> dict[str, Any]:
    """What Create, Update and Delete answer: the registry and the template."""
    return {
        "registryId": registry.account_id,
        "repositoryCreationTemplate": template_output(template),
    }


async def create_repository_creation_template(call: Call, params: dict[str, Any]
                                              ) -> dict[str, Any]:  # fmt: skip
    registry = await call.registry(params, kind="private")
    settings = _settings(params)
    template = await _checked(
        call, lambda: call.services.creation_templates.create(registry, params["prefix"], settings)
    )
    return _answer(registry, template)


async def update_repository_creation_template(call: Call, params: dict[str, Any]
                                              ) -> dict[str, Any]:  # fmt: skip
    registry = await call.registry(params, kind="private")
    changes = _settings(params)
    template = await _checked(
        call, lambda: call.services.creation_templates.update(registry, params["prefix"], changes)
    )
    return _answer(registry, template)


async def delete_repository_creation_template(call: Call, params: dict[str, Any]
                                              ) -> dict[str, Any]:  # fmt: skip
    registry = await call.registry(params, kind="private")
    template = await call.services.creation_templates.delete(registry, params["prefix"])
    return _answer(registry, template)


async def describe_repository_creation_templates(call: Call, params: dict[str, Any]
                                                 ) -> dict[str, Any]:  # fmt: skip
    registry = await call.registry(params, kind="private")
    prefixes = params.get("prefixes") or None
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribeRepositoryCreationTemplates:{registry.id}:{sorted(prefixes or [])}"
    after = decode_token(scope, params.get("nextToken"), str)
    found = await call.services.creation_templates.page(registry, prefixes, after, limit + 1)
    output: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryCreationTemplates": [template_output(t) for t in found[:limit]],
    }
    if len(found) > limit:
        output["nextToken"] = encode_token(scope, found[limit - 1].prefix)
    return output
