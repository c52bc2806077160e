"""ECR's image views and repository settings in the metadata layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Set as AbstractSet

import pytest

from ecrd.errors import ManifestReferenced, TooManyTags
from ecrd.metadata.database import Database
from ecrd.metadata.images import ImageStore
from ecrd.metadata.manifests import ManifestStore
from ecrd.metadata.records import Repository, RepositorySettings, TagFilter
from ecrd.metadata.repositories import RepositoryStore
from tests.metadata.test_stores import (
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    make_repository,
    manifest,
    run,
)

DIGEST_D = "sha256:" + "d" * 64


async def put(store: ManifestStore, repository: Repository, digest: str, tag: str | None,
              size: int = 10, children: AbstractSet[str] = frozenset()) -> None:  # fmt: skip
    new = dataclasses.replace(manifest(digest, children=children), size=size)
    await store.put(repository.id, new, tag, require_references=False)


def test_index_size_is_its_largest_image(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        # Given two images of 10 and 300 bytes, when an index lists both
        repository = await make_repository(database)
        store = ManifestStore(database)
        await put(store, repository, DIGEST_A, None, size=10)
        await put(store, repository, DIGEST_B, None, size=300)
        await put(store, repository, DIGEST_C, "multi", children={DIGEST_A, DIGEST_B})
        # Then its size is the largest one's, as ECR reports manifest lists
        [index] = await ImageStore(database).by_digests(repository.id, [DIGEST_C])
        assert index.size == 300
        assert index.tags == ("multi",)

    run(database_url, scenario)


def test_image_pages_filter_and_continue(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        # Given A (tags x, y), B untagged, C (tag z)
        repository = await make_repository(database)
        store = ManifestStore(database)
        await put(store, repository, DIGEST_A, "x")
        await store.put(repository.id, manifest(DIGEST_A), "y", require_references=False)
        await put(store, repository, DIGEST_B, None)
        await put(store, repository, DIGEST_C, "z")
        images = ImageStore(database)
        # When paged two at a time, then every image comes once, in push order
        first = await images.page(repository.id, "ANY", None, 2)
        rest = await images.page(repository.id, "ANY", first[-1].id, 2)
        assert [i.digest for i in first + rest] == [DIGEST_A, DIGEST_B, DIGEST_C]
        assert first[0].tags == ("x", "y")
        tagged = await images.page(repository.id, "TAGGED", None, 10)
        assert [i.digest for i in tagged] == [DIGEST_A, DIGEST_C]
        untagged = await images.page(repository.id, "UNTAGGED", None, 10)
        assert [i.digest for i in untagged] == [DIGEST_B]
        # Image ids: one per tag, one for the untagged image; pages split within an image
        ids: list[tuple[str, str | None]] = []
        after = None
        for _ in range(10):
            page = await images.id_page(repository.id, "ANY", after, 1)
            if not page:
                break
            ids.extend((digest, tag) for _, digest, tag in page)
            after = (page[-1][0], page[-1][2] or "")
        assert ids == [(DIGEST_A, "x"), (DIGEST_A, "y"), (DIGEST_B, None), (DIGEST_C, "z")]
        only_untagged = await images.id_page(repository.id, "UNTAGGED", None, 10)
        assert [(digest, tag) for _, digest, tag in only_untagged] == [(DIGEST_B, None)]

    run(database_url, scenario)


def test_deleting_by_tag_untags_until_the_last_tag(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await put(store, repository, DIGEST_A, "x")
        await store.put(repository.id, manifest(DIGEST_A), "y", require_references=False)
        images = ImageStore(database)
        # When one of two tags goes, the image stays
        first = await images.delete_by_tag(repository.id, "x")
        assert first is not None and not first.manifest_deleted
        assert [i.tags for i in await images.by_digests(repository.id, [DIGEST_A])] == [("y",)]
        # When the last tag goes, so does the image
        last = await images.delete_by_tag(repository.id, "y")
        assert last is not None and last.manifest_deleted and last.digest == DIGEST_A
        assert await images.by_digests(repository.id, [DIGEST_A]) == []
        assert await images.delete_by_tag(repository.id, "y") is None

    run(database_url, scenario)


def test_an_image_an_index_lists_is_not_deleted(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await put(store, repository, DIGEST_A, "child")
        await put(store, repository, DIGEST_D, "index", children={DIGEST_A})
        images = ImageStore(database)
        for attempt in (
            images.delete_by_digest(repository.id, DIGEST_A),
            images.delete_by_tag(repository.id, "child"),
        ):
            with pytest.raises(ManifestReferenced) as refused:
                await attempt
            assert refused.value.index_digest == DIGEST_D
        # Nothing changed, and once the index is gone the child can go
        assert [i.tags for i in await images.by_digests(repository.id, [DIGEST_A])] == [("child",)]
        deleted_index = await images.delete_by_digest(repository.id, DIGEST_D)
        assert deleted_index is not None and deleted_index.tags == ("index",)
        assert await images.delete_by_digest(repository.id, DIGEST_A) is not None

    run(database_url, scenario)


def test_repository_create_settings_tags_and_delete(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        registry_repository = await make_repository(database, "seed/app")
        store = RepositoryStore(database)
        settings = RepositorySettings(
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            tag_mutability_exclusions=(TagFilter("WILDCARD", "latest*"),),
            scan_on_push=True,
        )
        created = await store.create(
            registry_repository.registry_id, "new/app", "arn:new", settings, {"team": "a"}
        )
        assert created is not None and created.scan_on_push
        assert created.tag_is_immutable("v1") and not created.tag_is_immutable("latest-dev")
        # A second create of the name is refused without touching the first
        taken = await store.create(
            registry_repository.registry_id, "new/app", "arn:new", RepositorySettings(), {}
        )
        assert taken is None
        assert await store.resource_tags(created.id) == {"team": "a"}
        await store.tag(created.id, {"team": "b", "env": "dev"})
        assert await store.resource_tags(created.id) == {"env": "dev", "team": "b"}
        with pytest.raises(TooManyTags):
            await store.tag(created.id, {f"k{n}": "v" for n in range(49)})
        assert len(await store.resource_tags(created.id)) == 2
        # Deleting without force refuses while images exist; with force it goes
        await put(ManifestStore(database), created, DIGEST_A, "v1")
        assert await store.delete(created, force=False) is None
        assert await store.delete(created, force=True) == []
        assert await store.get(created.registry_id, "new/app") is None

    run(database_url, scenario)
