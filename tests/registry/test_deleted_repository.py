"""Writes into a repository that another request deleted after this one looked it up: each
step of a push fails with RepositoryDeleted (a RepositoryNotFound) and leaves no bytes
without a row. On SQLite and on PostgreSQL.

These are the moments of the race a forced DeleteRepository runs against pushes, made
certain: the repository record is read, then the repository is deleted, then the write comes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from ecrd.blobs.filesystem import FilesystemBlobStore
from ecrd.errors import RepositoryDeleted, RepositoryNotFound
from ecrd.metadata.blobs import BlobRecords
from ecrd.metadata.database import Database
from ecrd.metadata.records import Repository
from ecrd.registry.services import RegistryServices, build_services
from ecrd.settings import Settings
from tests.metadata.conftest import database_url, open_database

__all__ = ["database_url"]  # the fixture: SQLite and PostgreSQL
# Both stores already, through the fixture: not again in the PostgreSQL pass.
pytestmark = pytest.mark.metadata_independent

LAYER = b"layer bytes " * 1000
LAYER_DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()


async def _body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


Scenario = Callable[[RegistryServices, Repository, Path], Awaitable[None]]


def run(database_url: tuple[str, str | None], tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        database = open_database(database_url)
        await database.migrate()
        services = build_services(Settings(data_dir=tmp_path), database)
        try:
            registry = await services.registries.ensure("000000000000", "us-east-1")
            repository = await services.repositories.for_push(registry, "race/app")
            await scenario(services, repository, tmp_path)
            # whatever happened, nothing is left without a row
            await _assert_no_orphans(database, tmp_path)
        finally:
            await services.close()

    asyncio.run(main())


async def _assert_no_orphans(database: Database, data_dir: Path) -> None:
    upload_rows = await database.read(
        lambda connection: connection.execute(text("SELECT count(*) FROM uploads")).scalar_one()
    )
    assert upload_rows == 0
    assert list((data_dir / "uploads").iterdir()) == []
    blob_rows = await database.read(
        lambda connection: [
            row[0].partition(":")[2] for row in connection.execute(text("SELECT digest FROM blobs"))
        ]
    )
    on_disk = [path.name for path in (data_dir / "blobs").rglob("*") if path.is_file()]
    assert set(on_disk) <= set(blob_rows)


async def _delete(services: RegistryServices, repository: Repository) -> None:
    registry = await services.registries.ensure("000000000000", "us-east-1")
    await services.repositories.delete(registry, repository.name, force=True)


def test_starting_an_upload(database_url: tuple[str, str | None], tmp_path: Path) -> None:
    async def scenario(services: RegistryServices, repository: Repository, _: Path) -> None:
        await _delete(services, repository)
        with pytest.raises(RepositoryDeleted):
            await services.uploads.start(repository)

    run(database_url, tmp_path, scenario)


def test_appending_to_an_upload(database_url: tuple[str, str | None], tmp_path: Path) -> None:
    async def scenario(services: RegistryServices, repository: Repository, _: Path) -> None:
        upload = await services.uploads.start(repository)
        await services.uploads.append(repository, upload.id, _body(b"first"))
        await _delete(services, repository)
        with pytest.raises(RepositoryNotFound):
            await services.uploads.append(repository, upload.id, _body(b"second"))

    run(database_url, tmp_path, scenario)


def test_appending_while_the_delete_lands(
    database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    async def scenario(services: RegistryServices, repository: Repository, _: Path) -> None:
        upload = await services.uploads.start(repository)

        async def body_during_which_the_repository_goes() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            await _delete(services, repository)
            yield b"y" * 1000

        with pytest.raises(RepositoryDeleted):
            await services.uploads.append(
                repository, upload.id, body_during_which_the_repository_goes()
            )

    run(database_url, tmp_path, scenario)


def test_finishing_an_upload(database_url: tuple[str, str | None], tmp_path: Path) -> None:
    async def scenario(services: RegistryServices, repository: Repository, _: Path) -> None:
        upload = await services.uploads.start(repository)
        appended = await services.uploads.append(repository, upload.id, _body(LAYER))
        await _delete(services, repository)
        # the upload the append returned, as the closing PUT of one request holds it
        with pytest.raises(RepositoryNotFound):
            await services.uploads.finish(repository, upload.id, LAYER_DIGEST, appended)

    run(database_url, tmp_path, scenario)


def test_linking_a_committed_blob(database_url: tuple[str, str | None], tmp_path: Path) -> None:
    async def scenario(services: RegistryServices, repository: Repository, data: Path) -> None:
        upload = await services.uploads.start(repository)
        appended = await services.uploads.append(repository, upload.id, _body(LAYER))
        # the bytes are moved into place, then the repository goes before the link
        await FilesystemBlobStore(data).commit_upload(upload.id, "{}", LAYER_DIGEST)
        await _delete(services, repository)
        with pytest.raises(RepositoryDeleted):
            await BlobRecords(services.database).add_and_link(
                repository.id, LAYER_DIGEST, appended.offset, finished_upload_id=upload.id
            )

    run(database_url, tmp_path, scenario)


def test_storing_a_manifest(database_url: tuple[str, str | None], tmp_path: Path) -> None:
    async def scenario(services: RegistryServices, repository: Repository, _: Path) -> None:
        manifest = (
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'
            + LAYER_DIGEST.encode()
            + b'","size":1},"layers":[]}'
        )
        push = services.manifests.prepare_put("v1", None, manifest)
        await _delete(services, repository)
        with pytest.raises(RepositoryDeleted):
            await services.manifests.store_prepared(repository, push, require_references=False)

    run(database_url, tmp_path, scenario)
