"""The metadata stores, each test run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from ecrd.errors import ManifestBlobUnknown, ManifestReferenced, TagImmutable
from ecrd.metadata.blobs import BlobRecords
from ecrd.metadata.database import HEAD_REVISION, MIGRATIONS_DIR, Database
from ecrd.metadata.manifests import ManifestStore
from ecrd.metadata.records import Manifest, NewManifest, Repository
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.repositories import RepositoryStore
from ecrd.metadata.uploads import UploadStore
from tests.metadata.conftest import open_database

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64


def run(
    database_url: tuple[str, str | None], scenario: Callable[[Database], Awaitable[None]]
) -> None:
    async def main() -> None:
        database = open_database(database_url)
        try:
            await database.migrate()
            await scenario(database)
        finally:
            await database.close()

    asyncio.run(main())


async def make_repository(database: Database, name: str = "team/app") -> Repository:
    registry = await RegistryStore(database).ensure("000000000000", "us-east-1")
    return await RepositoryStore(database).ensure(registry.id, name, f"arn:{name}")


async def by_tag(store: ManifestStore, repository: Repository, tag: str) -> Manifest | None:
    found = await store.find_for_pull(repository.registry_id, repository.name, tag, None)
    return None if found is None else found[1]


async def by_digest(store: ManifestStore, repository: Repository, digest: str) -> Manifest | None:
    found = await store.find_for_pull(repository.registry_id, repository.name, None, digest)
    return None if found is None else found[1]


def manifest(
    digest: str,
    blobs: AbstractSet[str] = frozenset(),
    children: AbstractSet[str] = frozenset(),
    subject: str | None = None,
    artifact_type: str | None = None,
) -> NewManifest:
    payload = json.dumps({"digest": digest, "blobs": sorted(blobs)}).encode()
    return NewManifest(
        digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", payload=payload,
        size=10, artifact_type=artifact_type, config_media_type=None, subject_digest=subject,
        annotations_json=None, blob_digests=frozenset(blobs), child_digests=frozenset(children),
    )  # fmt: skip


def test_the_head_revision_is_the_newest_migration() -> None:
    # Database.migrate skips Alembic for a store at HEAD_REVISION: it must be the newest.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_migrated_store_is_at_the_head_revision(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        assert await database.revision() == HEAD_REVISION

    run(database_url, scenario)


def test_migrations_run_twice_without_harm(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        # given a migrated store, when migrations run again, then the data is still there
        repository = await make_repository(database)
        await database.migrate()
        found = await RepositoryStore(database).get(repository.registry_id, "team/app")
        assert found == repository

    run(database_url, scenario)


def test_registries_are_keyed_by_account_and_region(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        store = RegistryStore(database)
        first = await store.ensure("111111111111", "us-east-1")
        other_region = await store.ensure("111111111111", "eu-west-1")
        again = await RegistryStore(database).ensure("111111111111", "us-east-1")
        assert first.id == again.id
        assert other_region.id != first.id
        # repositories of one registry are invisible to another
        repositories = RepositoryStore(database)
        await repositories.ensure(first.id, "shared/name", "arn:1")
        assert await repositories.get(other_region.id, "shared/name") is None

    run(database_url, scenario)


def test_repository_names_page_in_byte_order(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        registry = await RegistryStore(database).ensure("000000000000", "us-east-1")
        repositories = RepositoryStore(database)
        for name in ["b", "a/z", "B-upper-is-not-valid-but-sorts", "a", "a-b"]:
            await repositories.ensure(registry.id, name, f"arn:{name}")
        first = await repositories.list_names(registry.id, None, 2)
        rest = await repositories.list_names(registry.id, first[-1], 10)
        # byte order: "B..." < "a" < "a-b" < "a/z" < "b" (a collation-aware sort would differ)
        assert first + rest == ["B-upper-is-not-valid-but-sorts", "a", "a-b", "a/z", "b"]

    run(database_url, scenario)


def test_blob_links_gate_a_repository(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        app = await make_repository(database, "app")
        other = await make_repository(database, "other")
        records = BlobRecords(database)
        await records.add_and_link(app.id, DIGEST_A, 42)
        assert (await records.linked(app.id, DIGEST_A)).size == 42  # type: ignore[union-attr]
        assert await records.linked(other.id, DIGEST_A) is None
        # linking by digest works only for a recorded blob
        assert await records.link(other.id, DIGEST_A) is not None
        assert await records.link(other.id, DIGEST_B) is None
        assert await records.unlink(app.id, DIGEST_A) is True
        assert await records.unlink(app.id, DIGEST_A) is False
        assert await records.linked(other.id, DIGEST_A) is not None

    run(database_url, scenario)


def test_upload_offset_and_driver_state_advance_only_from_the_expected_offset(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        uploads = UploadStore(database)
        await uploads.create("upload-1", repository, "{}", max_open_in_registry=10)
        assert await uploads.advance("upload-1", 0, 100, '{"parts": 1}') is True
        # a second writer that read the old offset loses, and its driver state is not kept
        assert await uploads.advance("upload-1", 0, 50, '{"parts": 2}') is False
        stored = await uploads.get(repository.id, "upload-1")
        assert stored is not None
        assert (stored.offset, stored.driver_state_json) == (100, '{"parts": 1}')
        other = await make_repository(database, "other")
        assert await uploads.get(other.id, "upload-1") is None
        assert await uploads.delete("upload-1") is True
        assert await uploads.get(repository.id, "upload-1") is None

    run(database_url, scenario)


def test_manifest_put_needs_linked_blobs_and_present_children(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        with pytest.raises(ManifestBlobUnknown) as missing:
            await store.put(repository.id, manifest(DIGEST_B, blobs={DIGEST_A}), "v1")
        assert missing.value.digest == DIGEST_A
        # nothing was stored by the failed put
        assert await by_digest(store, repository, DIGEST_B) is None
        assert await store.list_tags(repository.id, None, 10) == []
        await BlobRecords(database).add_and_link(repository.id, DIGEST_A, 1)
        stored = await store.put(repository.id, manifest(DIGEST_B, blobs={DIGEST_A}), "v1")
        assert stored.created is True
        with pytest.raises(ManifestBlobUnknown):
            await store.put(
                repository.id, manifest(DIGEST_C, children={"sha256:" + "d" * 64}), None
            )
        index = await store.put(repository.id, manifest(DIGEST_C, children={DIGEST_B}), "multi")
        assert index.created is True
        again = await store.put(repository.id, manifest(DIGEST_B, blobs={DIGEST_A}), "v1")
        assert again.created is False and again.manifest.id == stored.manifest.id

    run(database_url, scenario)


def test_tags_move_unless_immutable(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await store.put(repository.id, manifest(DIGEST_A), "v1", require_references=False)
        await store.put(repository.id, manifest(DIGEST_B), "v1", require_references=False)
        assert (await by_tag(store, repository, "v1")).digest == DIGEST_B  # type: ignore[union-attr]
        with pytest.raises(TagImmutable):
            await store.put(repository.id, manifest(DIGEST_A), "v1", immutable_tags={"v1"})
        assert (await by_tag(store, repository, "v1")).digest == DIGEST_B  # type: ignore[union-attr]
        # the same digest under an immutable tag is not a move
        await store.put(repository.id, manifest(DIGEST_B), "v1", immutable_tags={"v1"})

    run(database_url, scenario)


def test_deletes_cascade_and_respect_index_references(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await store.put(repository.id, manifest(DIGEST_A), "child", require_references=False)
        await store.put(repository.id, manifest(DIGEST_B, children={DIGEST_A}), "index")
        with pytest.raises(ManifestReferenced):
            await store.delete(repository.id, DIGEST_A)
        assert await store.delete(repository.id, DIGEST_B) is True
        assert await by_tag(store, repository, "index") is None
        assert await store.delete(repository.id, DIGEST_A) is True
        assert await store.list_tags(repository.id, None, 10) == []
        assert await store.delete(repository.id, DIGEST_A) is False

    run(database_url, scenario)


def test_tags_page_in_byte_order(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        for tag in ["v2", "V1", "latest", "v10", "_x"]:
            await store.put(repository.id, manifest(DIGEST_A), tag, require_references=False)
        first = await store.list_tags(repository.id, None, 3)
        rest = await store.list_tags(repository.id, first[-1], 3)
        assert first + rest == ["V1", "_x", "latest", "v10", "v2"]
        assert await store.delete_tag(repository.id, "v10") is True
        assert await by_digest(store, repository, DIGEST_A) is not None

    run(database_url, scenario)


def test_referrers_filter_by_artifact_type(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await store.put(repository.id, manifest(DIGEST_A), "v1", require_references=False)
        await store.put(repository.id, manifest(DIGEST_B, subject=DIGEST_A, artifact_type="sig"),
                        None, require_references=False)  # fmt: skip
        await store.put(repository.id, manifest(DIGEST_C, subject=DIGEST_A, artifact_type="sbom"),
                        None, require_references=False)  # fmt: skip
        everything = await store.referrers(repository.id, DIGEST_A, None, None, None)
        assert [m.digest for m in everything] == [DIGEST_B, DIGEST_C]
        signatures = await store.referrers(repository.id, DIGEST_A, ["sig"], None, None)
        assert [m.digest for m in signatures] == [DIGEST_B]
        after_first = await store.referrers(repository.id, DIGEST_A, None, DIGEST_B, 5)
        assert [m.digest for m in after_first] == [DIGEST_C]
        assert await store.referrers(repository.id, DIGEST_B, None, None, None) == []

    run(database_url, scenario)


def test_concurrent_writers_do_not_fail(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        records = BlobRecords(database)
        digests = [f"sha256:{index:064x}" for index in range(40)]
        await asyncio.gather(*(records.add_and_link(repository.id, d, 1) for d in digests))
        found = await asyncio.gather(*(records.linked(repository.id, d) for d in digests))
        assert all(blob is not None for blob in found)

    run(database_url, scenario)


def test_find_for_pull_tells_a_missing_repository_from_a_missing_manifest(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        repository = await make_repository(database)
        store = ManifestStore(database)
        await store.put(repository.id, manifest(DIGEST_A), "v1", require_references=False)
        registry_id = repository.registry_id
        # an unknown repository: nothing at all (the edge says NAME_UNKNOWN)
        assert await store.find_for_pull(registry_id, "no/such", "v1", None) is None
        # a known repository without the tag or digest: the repository, no manifest
        missing_tag = await store.find_for_pull(registry_id, repository.name, "v2", None)
        assert missing_tag == (repository, None)
        missing_digest = await store.find_for_pull(registry_id, repository.name, None, DIGEST_B)
        assert missing_digest == (repository, None)
        # by tag and by digest: the same stored manifest, bytes intact
        tagged = await store.find_for_pull(registry_id, repository.name, "v1", None)
        digested = await store.find_for_pull(registry_id, repository.name, None, DIGEST_A)
        assert tagged is not None and digested is not None
        assert tagged[1] == digested[1]
        assert tagged[1] is not None and tagged[1].payload == manifest(DIGEST_A).payload

    run(database_url, scenario)
