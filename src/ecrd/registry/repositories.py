"""Repositories: finding, creating (by API or on a first push), settings, tags and policy."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ecrd.blobs.store import BlobStore
from ecrd.errors import (
    NameInvalid,
    ParameterInvalid,
    PolicyNotFound,
    RepositoryAlreadyExists,
    RepositoryNotEmpty,
    RepositoryNotFound,
)
from ecrd.metadata.records import Registry, Repository, RepositorySettings
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.repositories import RepositoryStore
from ecrd.names import check_repository_name
from ecrd.registry.policies import check_resource_policy

if TYPE_CHECKING:
    from ecrd.registry.creation_templates import CreationTemplate, CreationTemplateService

_WITH_EXCLUSIONS = ("IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")


def repository_arn(registry: Registry, name: str) -> str:
    """As AWS writes it: ECR Public ARNs name no region."""
    if registry.kind == "public":
        return f"arn:aws:ecr-public::{registry.account_id}:repository/{name}"
    return f"arn:aws:ecr:{registry.region}:{registry.account_id}:repository/{name}"


def repository_not_found(registry: Registry, name: str) -> RepositoryNotFound:
    """ECR's wording for a repository that does not exist."""
    return RepositoryNotFound(
        f"The repository with name '{name}' does not exist in the registry "
        f"with id '{registry.account_id}'"
    )


def check_settings(settings: RepositorySettings) -> RepositorySettings:
    """ECR's rules on combining settings: exclusions only with a *_WITH_EXCLUSION mode, and a
    KMS key only with KMS encryption."""
    if settings.image_tag_mutability in _WITH_EXCLUSIONS:
        if not settings.tag_mutability_exclusions:
            raise ParameterInvalid(
                f"imageTagMutabilityExclusionFilters are required when imageTagMutability is "
                f"{settings.image_tag_mutability}"
            )
    elif settings.tag_mutability_exclusions:
        raise ParameterInvalid(
            "imageTagMutabilityExclusionFilters may only be given with imageTagMutability "
            "IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION"
        )
    if settings.kms_key is not None and settings.encryption_type == "AES256":
        raise ParameterInvalid("a KMS key may only be given with encryptionType KMS or KMS_DSSE")
    return settings


class RepositoryService:
    def __init__(
        self,
        registries: RegistryStore,
        repositories: RepositoryStore,
        blob_store: BlobStore,
        create_on_push: bool,
        templates: CreationTemplateService | None = None,
    ) -> None:
        self._registries = registries
        self._repositories = repositories
        self._blob_store = blob_store
        self._create_on_push = create_on_push
        self._templates = templates

    async def find(self, registry: Registry, name: str) -> Repository:
        """The repository named `name`; RepositoryNotFound when there is none."""
        check_repository_name(name)
        repository = await self._repositories.get(registry.id, name)
        if repository is None:
            raise repository_not_found(registry, name)
        return repository

    async def lookup(self, registry: Registry, name: str) -> Repository | None:
        """The repository named `name`, or None when there is none (or the name is invalid)."""
        try:
            check_repository_name(name)
        except NameInvalid:
            return None
        return await self._repositories.get(registry.id, name)

    async def for_push(self, registry: Registry, name: str) -> Repository:
        """The repository to push into, made on ECR's behalf when it does not exist: as ECR,
        when a CREATE_ON_PUSH creation template covers the name (its settings and policies
        applied); and with ECR's defaults for any name while `create_on_push` is on (ecrd's
        zero-setup default). RepositoryNotFound otherwise."""
        return await self._existing_or_made(
            registry, name, "CREATE_ON_PUSH", without_template=self._create_on_push
        )

    async def for_cache(self, registry: Registry, name: str) -> Repository:
        """The repository a pull-through cache stores into, made on ECR's behalf when it does
        not exist: through the covering PULL_THROUGH_CACHE template, else with ECR's
        defaults."""
        return await self._existing_or_made(registry, name, "PULL_THROUGH_CACHE")

    async def for_replication(self, registry: Registry, name: str) -> Repository:
        """The repository a replicated image goes into in a destination registry, made on
        ECR's behalf when it does not exist: through the covering REPLICATION template, else
        with ECR's defaults."""
        return await self._existing_or_made(registry, name, "REPLICATION")

    async def _existing_or_made(
        self, registry: Registry, name: str, purpose: str, without_template: bool = True
    ) -> Repository:
        """The repository named `name`; when there is none, one made on ECR's behalf through
        the template covering the name for `purpose`, or with ECR's defaults if no template
        does and `without_template` (RepositoryNotFound if it is off)."""
        check_repository_name(name)
        existing = await self._repositories.get(registry.id, name) if registry.is_stored else None
        if existing is not None:
            return existing
        template = None
        if self._templates is not None:
            template = await self._templates.matching(registry, name, purpose)
        if template is None and not without_template:
            raise repository_not_found(registry, name)
        return await self._on_behalf(registry, name, template)

    async def _on_behalf(
        self, registry: Registry, name: str, template: CreationTemplate | None
    ) -> Repository:
        """Make (or find, when another request just made it) a repository on ECR's behalf,
        with all the template gives it in one transaction."""
        registry = await self._registries.store(registry)
        if template is None:
            return await self._repositories.ensure(
                registry.id, name, repository_arn(registry, name)
            )
        return await self._repositories.ensure(
            registry.id,
            name,
            repository_arn(registry, name),
            template.settings,
            template.resource_tags,
            policy_text=template.repository_policy,
            lifecycle_policy_text=template.lifecycle_policy,
        )

    async def names(self, registry: Registry, after: str | None, limit: int) -> list[str]:
        return await self._repositories.list_names(registry.id, after, limit)

    async def create(
        self,
        registry: Registry,
        name: str,
        settings: RepositorySettings,
        resource_tags: dict[str, str],
    ) -> Repository:
        check_repository_name(name)
        check_settings(settings)
        registry = await self._registries.store(registry)
        created = await self._repositories.create(
            registry.id, name, repository_arn(registry, name), settings, resource_tags
        )
        if created is None:
            raise RepositoryAlreadyExists(
                f"The repository with name '{name}' already exists in the registry with id "
                f"'{registry.account_id}'"
            )
        return created

    async def page(self, registry: Registry, after: str | None, limit: int) -> list[Repository]:
        return await self._repositories.page(registry.id, after, limit)

    async def delete(self, registry: Registry, name: str, force: bool) -> Repository:
        """Delete a repository; without `force` only an empty one (RepositoryNotEmpty)."""
        repository = await self.find(registry, name)
        open_uploads = await self._repositories.delete(repository, force)
        if open_uploads is None:
            raise RepositoryNotEmpty(
                f"The repository with name '{name}' in registry with id '{registry.account_id}' "
                "cannot be deleted because it still contains images"
            )
        await asyncio.gather(
            *(
                self._blob_store.abort_upload(upload.id, upload.driver_state_json)
                for upload in open_uploads
            )
        )
        return repository

    async def configure(self, repository: Repository, settings: RepositorySettings) -> Repository:
        """Replace the repository's settings (mutability, scanning, encryption)."""
        return await self._repositories.update(repository, check_settings(settings))

    async def resource_tags(self, repository: Repository) -> dict[str, str]:
        return await self._repositories.resource_tags(repository.id)

    async def tag(self, repository: Repository, resource_tags: dict[str, str]) -> None:
        await self._repositories.tag(repository.id, resource_tags)

    async def untag(self, repository: Repository, keys: list[str]) -> None:
        await self._repositories.untag(repository.id, keys)

    async def policy(self, registry: Registry, repository: Repository) -> str:
        policy_text = await self._repositories.policy(repository.id)
        if policy_text is None:
            raise PolicyNotFound(
                f"Repository policy does not exist for the repository with name "
                f"'{repository.name}' in the registry with id '{registry.account_id}'"
            )
        return policy_text

    async def set_policy(self, repository: Repository, policy_text: str) -> str:
        await self._repositories.set_policy(repository.id, check_resource_policy(policy_text))
        return policy_text

    async def catalog_data(self, repository: Repository) -> dict[str, Any] | None:
        return await self._repositories.catalog_data(repository.id)

    async def set_catalog_data(self, repository: Repository, catalog_data: dict[str, Any]) -> None:
        await self._repositories.set_catalog_data(repository.id, catalog_data)

    async def delete_policy(self, registry: Registry, repository: Repository) -> str:
        policy_text = await self.policy(registry, repository)
        await self._repositories.set_policy(repository.id, None)
        return policy_text


def settings_of(repository: Repository) -> RepositorySettings:
    """The settings a repository has now, to change one of them."""
    return RepositorySettings(
        image_tag_mutability=repository.image_tag_mutability,
        tag_mutability_exclusions=repository.tag_mutability_exclusions,
        scan_on_push=repository.scan_on_push,
        encryption_type=repository.encryption_type,
        kms_key=repository.kms_key,
    )
