"""Repositories of a registry: their settings, resource tags and policy."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from ecrd.errors import TooManyTags
from ecrd.metadata.database import Database
from ecrd.metadata.records import (
    Repository,
    RepositorySettings,
    TagFilter,
    Upload,
    as_utc,
    utcnow,
)
from ecrd.metadata.replication import forget_repository
from ecrd.metadata.schema import manifests, repositories, repository_tags, uploads
from ecrd.metadata.signing import forget_repository_signatures
from ecrd.metadata.statements import insert_ignoring_conflicts
from ecrd.metadata.uploads import upload_record

# ECR allows this many resource tags on one repository.
MAX_RESOURCE_TAGS = 50

COLUMNS = (
    repositories.c.id,
    repositories.c.registry_id,
    repositories.c.name,
    repositories.c.arn,
    repositories.c.created_at,
    repositories.c.image_tag_mutability,
    repositories.c.tag_mutability_exclusions_json,
    repositories.c.scan_on_push,
    repositories.c.encryption_type,
    repositories.c.kms_key,
    repositories.c.policy_text,
)


def repository_record(row: Any) -> Repository:
    return Repository(
        id=row.id,
        registry_id=row.registry_id,
        name=row.name,
        arn=row.arn,
        created_at=as_utc(row.created_at),
        image_tag_mutability=row.image_tag_mutability,
        tag_mutability_exclusions=_exclusions_from_json(row.tag_mutability_exclusions_json),
        scan_on_push=bool(row.scan_on_push),
        encryption_type=row.encryption_type,
        kms_key=row.kms_key,
        policy_text=row.policy_text,
    )


@lru_cache(maxsize=1024)
def _exclusions_from_json(text: str) -> tuple[TagFilter, ...]:
    # Read with every repository (a pull's too), and the same few texts again and again; the
    # filters are frozen, so one parse serves them all.
    return tuple(TagFilter(item["filterType"], item["filter"]) for item in json.loads(text or "[]"))


def _exclusions_to_json(exclusions: tuple[TagFilter, ...]) -> str:
    return json.dumps([{"filterType": e.filter_type, "filter": e.filter} for e in exclusions])


def _settings_values(settings: RepositorySettings) -> dict[str, Any]:
    return {
        "image_tag_mutability": settings.image_tag_mutability,
        "tag_mutability_exclusions_json": _exclusions_to_json(settings.tag_mutability_exclusions),
        "scan_on_push": settings.scan_on_push,
        "encryption_type": settings.encryption_type,
        "kms_key": settings.kms_key,
    }


# Built once: every data-plane request looks a repository up by name.
_BY_NAME = select(*COLUMNS).where(
    (repositories.c.registry_id == bindparam("registry_id"))
    & (repositories.c.name == bindparam("name"))
)


class RepositoryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, registry_id: int, name: str) -> Repository | None:
        def work(connection: Connection) -> Repository | None:
            row = connection.execute(_BY_NAME, {"registry_id": registry_id, "name": name}).first()
            return None if row is None else repository_record(row)

        return await self._database.read(work)

    async def ensure(
        self,
        registry_id: int,
        name: str,
        arn: str,
        settings: RepositorySettings | None = None,
        resource_tags: dict[str, str] | None = None,
        policy_text: str | None = None,
        lifecycle_policy_text: str | None = None,
    ) -> Repository:
        """Return the repository, creating it (with ECR's defaults, or the settings and
        policies given) when it does not exist."""
        existing = await self.get(registry_id, name)
        if existing is not None:
            return existing
        created = await self.create(
            registry_id,
            name,
            arn,
            settings or RepositorySettings(),
            resource_tags or {},
            policy_text=policy_text,
            lifecycle_policy_text=lifecycle_policy_text,
        )
        return created or await self._must_get(registry_id, name)

    async def create(
        self,
        registry_id: int,
        name: str,
        arn: str,
        settings: RepositorySettings,
        resource_tags: dict[str, str],
        policy_text: str | None = None,
        lifecycle_policy_text: str | None = None,
    ) -> Repository | None:
        """Create the repository with its tags (and policies, from a creation template) in one
        transaction; None if the name is taken."""
        if len(resource_tags) > MAX_RESOURCE_TAGS:
            raise TooManyTags(f"a repository may have at most {MAX_RESOURCE_TAGS} tags")

        def work(connection: Connection) -> Repository | None:
            inserted = connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    repositories,
                    registry_id=registry_id,
                    name=name,
                    arn=arn,
                    created_at=utcnow(),
                    policy_text=policy_text,
                    lifecycle_policy_text=lifecycle_policy_text,
                    **_settings_values(settings),
                ).returning(repositories.c.id)
            ).first()
            if inserted is None:
                return None
            if resource_tags:
                connection.execute(
                    insert(repository_tags),
                    [
                        {"repository_id": inserted.id, "key": key, "value": value}
                        for key, value in resource_tags.items()
                    ],
                )
            row = connection.execute(_BY_NAME, {"registry_id": registry_id, "name": name}).one()
            return repository_record(row)

        return await self._database.write(work)

    async def _must_get(self, registry_id: int, name: str) -> Repository:
        repository = await self.get(registry_id, name)
        if repository is None:
            raise RuntimeError(f"repository {name} vanished while being created")
        return repository

    async def list_names(self, registry_id: int, after: str | None, limit: int) -> list[str]:
        """Names in lexical order, those after `after`, at most `limit` of them."""
        query = select(repositories.c.name).where(repositories.c.registry_id == registry_id)
        if after is not None:
            query = query.where(repositories.c.name > after)
        query = query.order_by(repositories.c.name).limit(limit)

        def work(connection: Connection) -> list[str]:
            return list(connection.execute(query).scalars())

        return await self._database.read(work)

    async def page(self, registry_id: int, after: str | None, limit: int) -> list[Repository]:
        """Repositories in lexical order of name, those after `after`, at most `limit`."""
        query = select(*COLUMNS).where(repositories.c.registry_id == registry_id)
        if after is not None:
            query = query.where(repositories.c.name > after)
        query = query.order_by(repositories.c.name).limit(limit)
        return await self._database.read(
            lambda connection: [repository_record(row) for row in connection.execute(query)]
        )

    async def delete(self, repository: Repository, force: bool) -> list[Upload] | None:
        """Delete the repository and everything in it; return its unfinished uploads.

        Without `force`, deletes nothing and returns None while it holds any image. The caller
        drops the returned uploads' bytes; their rows go with the repository.
        """

        def work(connection: Connection) -> list[Upload] | None:
            # Lock the row first (PostgreSQL; SQLite writers are serial anyway): an upload
            # being added takes a share lock on it, so this waits for it to commit, and then
            # the list below holds it; uploads added later fail on the missing repository.
            # Without the lock an upload committed meanwhile would go with the repository
            # (cascade) but keep its bytes.
            connection.execute(
                select(repositories.c.id)
                .where(repositories.c.id == repository.id)
                .with_for_update()
            )
            if not force:
                has_image = connection.execute(
                    select(manifests.c.id)
                    .where(manifests.c.repository_id == repository.id)
                    .limit(1)
                ).first()
                if has_image is not None:
                    return None
            open_uploads = [
                upload_record(row)
                for row in connection.execute(
                    select(uploads).where(uploads.c.repository_id == repository.id)
                )
            ]
            connection.execute(delete(repositories).where(repositories.c.id == repository.id))
            forget_repository(connection, repository.registry_id, repository.name)
            forget_repository_signatures(connection, repository.registry_id, repository.name)
            return open_uploads

        return await self._database.write(work)

    async def update(self, repository: Repository, settings: RepositorySettings) -> Repository:
        statement = (
            update(repositories)
            .where(repositories.c.id == repository.id)
            .values(**_settings_values(settings))
        )

        def work(connection: Connection) -> Repository:
            connection.execute(statement)
            row = connection.execute(
                select(*COLUMNS).where(repositories.c.id == repository.id)
            ).one()
            return repository_record(row)

        return await self._database.write(work)

    async def resource_tags(self, repository_id: int) -> dict[str, str]:
        query = (
            select(repository_tags.c.key, repository_tags.c.value)
            .where(repository_tags.c.repository_id == repository_id)
            .order_by(repository_tags.c.key)
        )
        return await self._database.read(
            lambda connection: {row.key: row.value for row in connection.execute(query)}
        )

    async def tag(self, repository_id: int, resource_tags: dict[str, str]) -> None:
        """Add or overwrite tags; TooManyTags if the repository would pass the limit."""

        def work(connection: Connection) -> None:
            existing = set(
                connection.execute(
                    select(repository_tags.c.key).where(
                        repository_tags.c.repository_id == repository_id
                    )
                ).scalars()
            )
            if len(existing | set(resource_tags)) > MAX_RESOURCE_TAGS:
                raise TooManyTags(f"a repository may have at most {MAX_RESOURCE_TAGS} tags")
            for key, value in resource_tags.items():
                if key in existing:
                    connection.execute(
                        update(repository_tags)
                        .where(
                            (repository_tags.c.repository_id == repository_id)
                            & (repository_tags.c.key == key)
                        )
                        .values(value=value)
                    )
                else:
                    connection.execute(
                        insert(repository_tags).values(
                            repository_id=repository_id, key=key, value=value
                        )
                    )

        await self._database.write(work)

    async def untag(self, repository_id: int, keys: list[str]) -> None:
        statement = delete(repository_tags).where(
            (repository_tags.c.repository_id == repository_id) & repository_tags.c.key.in_(keys)
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def policy(self, repository_id: int) -> str | None:
        query = select(repositories.c.policy_text).where(repositories.c.id == repository_id)
        return await self._database.read(lambda connection: connection.execute(query).scalar())

    async def catalog_data(self, repository_id: int) -> dict[str, Any] | None:
        """ECR Public catalog data (JSON), None when never set."""
        query = select(repositories.c.catalog_data_json).where(repositories.c.id == repository_id)
        text = await self._database.read(lambda connection: connection.execute(query).scalar())
        return None if text is None else dict(json.loads(text))

    async def set_catalog_data(self, repository_id: int, catalog_data: dict[str, Any]) -> None:
        statement = (
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(catalog_data_json=json.dumps(catalog_data))
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def set_policy(self, repository_id: int, policy_text: str | None) -> None:
        statement = (
            update(repositories)
            .where(repositories.c.id == repository_id)
            .values(policy_text=policy_text)
        )
        await self._database.write(lambda connection: connection.execute(statement))
