"""Finding repositories by name, and creating them on a first push."""

from __future__ import annotations

from ecrd.errors import RepositoryNotFound
from ecrd.metadata.records import Registry, Repository
from ecrd.metadata.repositories import RepositoryStore
from ecrd.names import check_repository_name


def repository_arn(registry: Registry, name: str) -> str:
    return f"arn:aws:ecr:{registry.region}:{registry.account_id}:repository/{name}"


def repository_not_found(registry: Registry, name: str) -> RepositoryNotFound:
    """ECR's wording for a repository that does not exist."""
    return RepositoryNotFound(
        f"The repository with name '{name}' does not exist in the registry "
        f"with id '{registry.account_id}'"
    )


class RepositoryService:
    def __init__(self, repositories: RepositoryStore, create_on_push: bool) -> None:
        self._repositories = repositories
        self._create_on_push = create_on_push

    async def find(self, registry: Registry, name: str) -> Repository:
        """The repository named `name`; RepositoryNotFound when there is none."""
        check_repository_name(name)
        repository = await self._repositories.get(registry.id, name)
        if repository is None:
            raise repository_not_found(registry, name)
        return repository

    async def for_push(self, registry: Registry, name: str) -> Repository:
        """The repository to push into, created first when create-on-push is on."""
        if not self._create_on_push:
            return await self.find(registry, name)
        check_repository_name(name)
        return await self._repositories.ensure(registry.id, name, repository_arn(registry, name))

    async def names(self, registry: Registry, after: str | None, limit: int) -> list[str]:
        return await self._repositories.list_names(registry.id, after, limit)
