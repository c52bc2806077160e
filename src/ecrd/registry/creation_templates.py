"""Repository creation templates: what a repository ecrd makes on ECR's behalf gets (on a
push to a missing repository, and later for pull-through caches and replication).

A template belongs to a prefix: a repository namespace (`team` or `team/` covers `team/app`
and `team/app/web`) or ROOT, which covers every name. The longest prefix covering a name
wins; ROOT is the fallback. A template applies to the purposes its `appliedFor` lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecrd.errors import (
    ParameterInvalid,
    TemplateAlreadyExists,
    TemplateNotFound,
    TooManyTemplates,
)
from ecrd.lifecycle.policy import parse_policy
from ecrd.metadata.creation_templates import CreationTemplateStore, TemplateRecord
from ecrd.metadata.records import Registry, RepositorySettings, TagFilter
from ecrd.metadata.registries import RegistryStore
from ecrd.registry.policies import check_resource_policy
from ecrd.registry.repositories import check_settings

ROOT = "ROOT"
CREATE_ON_PUSH = "CREATE_ON_PUSH"
PULL_THROUGH_CACHE = "PULL_THROUGH_CACHE"
REPLICATION = "REPLICATION"
# ECR's quota of repository creation templates per registry.
MAX_TEMPLATES = 300


@dataclass(frozen=True)
class CreationTemplate:
    """A template as ecrd applies it."""

    prefix: str
    applied_for: tuple[str, ...]
    settings: RepositorySettings
    resource_tags: dict[str, str]
    repository_policy: str | None
    lifecycle_policy: str | None
    description: str | None
    custom_role_arn: str | None
    created_at: datetime
    updated_at: datetime


def template_of(record: TemplateRecord) -> CreationTemplate:
    stored = record.settings
    encryption = stored.get("encryptionConfiguration") or {"encryptionType": "AES256"}
    return CreationTemplate(
        prefix=record.prefix,
        applied_for=tuple(stored.get("appliedFor") or ()),
        settings=RepositorySettings(
            image_tag_mutability=stored.get("imageTagMutability", "MUTABLE"),
            tag_mutability_exclusions=tuple(
                TagFilter(item["filterType"], item["filter"])
                for item in stored.get("imageTagMutabilityExclusionFilters") or ()
            ),
            encryption_type=encryption["encryptionType"],
            kms_key=encryption.get("kmsKey"),
        ),
        resource_tags={tag["Key"]: tag["Value"] for tag in stored.get("resourceTags") or ()},
        repository_policy=stored.get("repositoryPolicy") or None,
        lifecycle_policy=stored.get("lifecyclePolicy") or None,
        description=stored.get("description"),
        custom_role_arn=stored.get("customRoleArn") or None,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def check_template(settings: dict[str, Any]) -> dict[str, Any]:
    """ECR's rules on a template's settings, as for a repository's: ParameterInvalid, or
    PolicyInvalid / LifecyclePolicyInvalid for the policies it carries."""
    template = template_of(TemplateRecord(ROOT, settings, datetime.min, datetime.min))
    if not template.applied_for:
        raise ParameterInvalid("appliedFor must name at least one of CREATE_ON_PUSH, "
                               "PULL_THROUGH_CACHE and REPLICATION")  # fmt: skip
    check_settings(template.settings)
    if template.repository_policy is not None:
        check_resource_policy(template.repository_policy)
    if template.lifecycle_policy is not None:
        parse_policy(template.lifecycle_policy)
    return settings


def covering_prefixes(name: str) -> list[str]:
    """The prefixes that cover repository `name`, longest first, ROOT last. A prefix is a
    namespace ("a prefix of prod applies to all repositories beginning with prod/"), written
    with or without its slash: `a/b/c` is covered by `a/b/`, `a/b`, `a/`, `a` and ROOT."""
    parts = name.split("/")
    prefixes: list[str] = []
    for count in range(len(parts) - 1, 0, -1):
        namespace = "/".join(parts[:count])
        prefixes += [namespace + "/", namespace]
    return [*prefixes, ROOT]


class CreationTemplateService:
    def __init__(self, registries: RegistryStore, store: CreationTemplateStore) -> None:
        self._registries = registries
        self._store = store

    async def create(self, registry: Registry, prefix: str, settings: dict[str, Any]
                     ) -> CreationTemplate:  # fmt: skip
        check_template(settings)
        registry = await self._registries.store(registry)
        try:
            record = await self._store.create(registry.id, prefix, settings, MAX_TEMPLATES)
        except LookupError:
            raise TooManyTemplates(
                f"The registry with id '{registry.account_id}' has {MAX_TEMPLATES} repository "
                "creation templates, the most it may have"
            ) from None
        if record is None:
            raise TemplateAlreadyExists(
                f"Repository creation template with prefix '{prefix}' already exists in the "
                f"registry with id '{registry.account_id}'"
            )
        return template_of(record)

    async def update(self, registry: Registry, prefix: str, changes: dict[str, Any]
                     ) -> CreationTemplate:  # fmt: skip
        """Change the settings `changes` names; the others stay."""
        current = None
        if registry.is_stored:
            current = await self._store.get(registry.id, prefix)
        if current is None:
            raise self._not_found(registry, prefix)
        settings = check_template({**current.settings, **changes})
        record = await self._store.update(registry.id, prefix, settings)
        if record is None:
            raise self._not_found(registry, prefix)
        return template_of(record)

    async def delete(self, registry: Registry, prefix: str) -> CreationTemplate:
        record = await self._store.delete(registry.id, prefix) if registry.is_stored else None
        if record is None:
            raise self._not_found(registry, prefix)
        return template_of(record)

    async def page(
        self, registry: Registry, prefixes: list[str] | None, after: str | None, limit: int
    ) -> list[CreationTemplate]:
        if not registry.is_stored:
            return []
        records = await self._store.page(registry.id, prefixes, after, limit)
        return [template_of(record) for record in records]

    async def matching(
        self, registry: Registry, name: str, purpose: str
    ) -> CreationTemplate | None:
        """The template that applies to repository `name` made for `purpose`: the one with
        the longest prefix covering the name among those applied for that purpose."""
        if not registry.is_stored:
            return None
        prefixes = covering_prefixes(name)
        found = {
            record.prefix: template_of(record)
            for record in await self._store.candidates(registry.id, prefixes)
        }
        for prefix in prefixes:
            template = found.get(prefix)
            if template is not None and purpose in template.applied_for:
                return template
        return None

    @staticmethod
    def _not_found(registry: Registry, prefix: str) -> TemplateNotFound:
        return TemplateNotFound(
            f"Repository creation template with prefix '{prefix}' does not exist in the "
            f"registry with id '{registry.account_id}'"
        )
