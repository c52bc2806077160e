"""Repository operations: create, describe, delete, settings and resource tags."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from ecrd.aws.calls import Call
from ecrd.aws.errors import AwsError
from ecrd.aws.pagination import decode_token, encode_token
from ecrd.errors import ParameterInvalid, RepositoryNotFound
from ecrd.metadata.records import Registry, Repository, RepositorySettings, TagFilter
from ecrd.registry.repositories import repository_not_found, settings_of
from ecrd.registry.scanning_configurations import resolve

DEFAULT_PAGE_SIZE = 100
_REPOSITORY_ARN = re.compile(
    r"^arn:aws:(ecr:[a-z]{2}(?:-[a-z]+)+-\d|ecr-public:):(\d{12}):repository/(.+)$"
)
# ECR's words for a resourceArn that is not a repository ARN of the service called.
INVALID_ARN = "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"


def aws_managed_key_arn(account_id: str, region: str) -> str:
    """The ARN of the registry's AWS managed key for ECR (alias aws/ecr), which ECR uses for
    KMS encryption when no key is given. AWS shows it as `key/<uuid>`; ecrd has no KMS, so
    the uuid is derived from the alias's ARN: the same for every repository of a registry."""
    alias_arn = f"arn:aws:kms:{region}:{account_id}:alias/aws/ecr"
    return f"arn:aws:kms:{region}:{account_id}:key/{uuid.uuid5(uuid.NAMESPACE_URL, alias_arn)}"


def _encryption_output(registry: Registry, repository: Repository) -> dict[str, Any]:
    """`encryptionConfiguration`: a KMS repository created without a key stores none and
    shows its registry's AWS managed key (as does one that recorded the alias, which ecrd
    stored before it showed key ARNs)."""
    encryption: dict[str, Any] = {"encryptionType": repository.encryption_type}
    kms_key = repository.kms_key
    legacy_alias = f"arn:aws:kms:{registry.region}:{registry.account_id}:alias/aws/ecr"
    if repository.encryption_type != "AES256" and kms_key in (None, legacy_alias):
        kms_key = aws_managed_key_arn(registry.account_id, registry.region)
    if kms_key is not None:
        encryption["kmsKey"] = kms_key
    return encryption


def repository_output(call: Call, registry: Registry, repository: Repository) -> dict[str, Any]:
    """A `Repository` shape as ECR returns it."""
    output: dict[str, Any] = {
        "repositoryArn": repository.arn,
        "registryId": registry.account_id,
        "repositoryName": repository.name,
        "repositoryUri": f"{call.registry_host(registry)}/{repository.name}",
        "createdAt": repository.created_at,
        "imageTagMutability": repository.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": repository.scan_on_push},
        "encryptionConfiguration": _encryption_output(registry, repository),
    }
    if repository.tag_mutability_exclusions:
        output["imageTagMutabilityExclusionFilters"] = exclusions_output(repository)
    return output


def exclusions_output(repository: Repository) -> list[dict[str, str]]:
    return [
        {"filterType": exclusion.filter_type, "filter": exclusion.filter}
        for exclusion in repository.tag_mutability_exclusions
    ]


def _exclusions(params: dict[str, Any]) -> tuple[TagFilter, ...]:
    return tuple(
        TagFilter(item["filterType"], item["filter"])
        for item in params.get("imageTagMutabilityExclusionFilters") or ()
    )


def resource_tags(tags: list[dict[str, str]]) -> dict[str, str]:
    """Tags from a request, refusing keys AWS reserves for itself."""
    result: dict[str, str] = {}
    for tag in tags:
        if tag["Key"].lower().startswith("aws:"):
            raise AwsError(
                "InvalidTagParameterException",
                "Tag keys beginning with 'aws:' are reserved for AWS use",
            )
        result[tag["Key"]] = tag["Value"]
    return result


async def create_repository(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    encryption = params.get("encryptionConfiguration") or {"encryptionType": "AES256"}
    settings = RepositorySettings(
        image_tag_mutability=params.get("imageTagMutability", "MUTABLE"),
        tag_mutability_exclusions=_exclusions(params),
        scan_on_push=bool(
            (params.get("imageScanningConfiguration") or {}).get("scanOnPush", False)
        ),
        encryption_type=encryption["encryptionType"],
        # None with KMS means the AWS managed key, shown by `_encryption_output`.
        kms_key=encryption.get("kmsKey"),
    )
    repository = await call.services.repositories.create(
        registry,
        params["repositoryName"],
        settings,
        resource_tags(params.get("tags") or []),
    )
    return {"repository": repository_output(call, registry, repository)}


async def describe_repositories(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    names = params.get("repositoryNames")
    if names is not None:
        if "maxResults" in params or "nextToken" in params:
            raise ParameterInvalid(
                "maxResults and nextToken cannot be used together with repositoryNames"
            )
        found = []
        for name in dict.fromkeys(names):
            found.append(await call.services.repositories.find(registry, name))
        return {"repositories": [repository_output(call, registry, r) for r in found]}
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    scope = f"DescribeRepositories:{registry.id}"
    after = decode_token(scope, params.get("nextToken"), str)
    page = await call.services.repositories.page(registry, after, limit + 1)
    output: dict[str, Any] = {
        "repositories": [repository_output(call, registry, r) for r in page[:limit]]
    }
    if len(page) > limit:
        output["nextToken"] = encode_token(scope, page[limit - 1].name)
    return output


async def delete_repository(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry = await call.registry(params)
    repository = await call.services.repositories.delete(
        registry, params["repositoryName"], bool(params.get("force", False))
    )
    return {"repository": repository_output(call, registry, repository)}


async def put_image_tag_mutability(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    settings = replace(
        settings_of(repository),
        image_tag_mutability=params["imageTagMutability"],
        tag_mutability_exclusions=_exclusions(params),
    )
    updated = await call.services.repositories.configure(repository, settings)
    output: dict[str, Any] = {
        "registryId": registry.account_id,
        "repositoryName": updated.name,
        "imageTagMutability": updated.image_tag_mutability,
    }
    if updated.tag_mutability_exclusions:
        output["imageTagMutabilityExclusionFilters"] = exclusions_output(updated)
    return output


async def put_image_scanning_configuration(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    registry, repository = await call.repository(params)
    scan_on_push = bool(params["imageScanningConfiguration"].get("scanOnPush", False))
    updated = await call.services.repositories.configure(
        repository, replace(settings_of(repository), scan_on_push=scan_on_push)
    )
    return {
        "registryId": registry.account_id,
        "repositoryName": updated.name,
        "imageScanningConfiguration": {"scanOnPush": updated.scan_on_push},
    }


async def _repository_by_arn(call: Call, arn: str) -> Repository:
    """The repository an ARN of this call's service names (ECR or ECR Public)."""
    match = _REPOSITORY_ARN.match(arn)
    public_arn = match is not None and match.group(1) == "ecr-public:"
    if match is None or public_arn != call.is_public:
        raise ParameterInvalid(INVALID_ARN)
    service_and_region, account_id, name = match.groups()
    if public_arn:
        registry = await call.registry({"registryId": account_id})
    else:
        registry = await call.services.registries.get(account_id, service_and_region[4:])
    repository = await call.services.repositories.find(registry, name)
    if repository.arn != arn:  # pragma: no cover - ARNs are derived from the same parts
        raise repository_not_found(registry, name)
    return repository


async def tag_resource(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    repository = await _repository_by_arn(call, params["resourceArn"])
    await call.services.repositories.tag(repository, resource_tags(params["tags"]))
    return {}


async def untag_resource(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    repository = await _repository_by_arn(call, params["resourceArn"])
    await call.services.repositories.untag(repository, list(params["tagKeys"]))
    return {}


async def list_tags_for_resource(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    repository = await _repository_by_arn(call, params["resourceArn"])
    tags = await call.services.repositories.resource_tags(repository)
    return {"tags": [{"Key": key, "Value": value} for key, value in tags.items()]}


async def batch_get_repository_scanning_configuration(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    registry = await call.registry(params)
    # The registry's rules decide first, the repository's own scanOnPush after, as on ECR.
    registry_configuration = await call.services.scanning.get(registry)
    configurations: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for name in dict.fromkeys(params["repositoryNames"]):
        try:
            repository = await call.services.repositories.find(registry, name)
        except RepositoryNotFound:
            failures.append(
                {
                    "repositoryName": name,
                    "failureCode": "REPOSITORY_NOT_FOUND",
                    "failureReason": "REPOSITORY_NOT_FOUND",
                }
            )
            continue
        scanning = resolve(registry_configuration, repository)
        configurations.append(
            {
                "repositoryArn": repository.arn,
                "repositoryName": repository.name,
                "scanOnPush": scanning.on_push,
                "scanFrequency": scanning.frequency,
                "appliedScanFilters": list(scanning.applied_filters),
            }
        )
    return {"scanningConfigurations": configurations, "failures": failures}
