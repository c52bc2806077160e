"""Abandoned uploads expire: their rows and bytes go, fresh uploads stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import update

from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import uploads
from ecrd.registry.services import build_services
from ecrd.settings import Settings


async def _bytes(chunks: list[bytes]):  # type: ignore[no-untyped-def]
    for chunk in chunks:
        yield chunk


def test_abandoned_uploads_are_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path)
        database = Database(settings.metadata_url)
        await database.migrate()
        services = build_services(settings, database)
        registry = await services.registry_for_host(None)
        repository = await services.repositories.for_push(registry, "team/app")
        # given one upload untouched for a year and one written just now
        old = await services.uploads.start(repository)
        await services.uploads.append(repository, old.id, _bytes([b"x" * 10]))
        fresh = await services.uploads.start(repository)
        a_year_ago = utcnow().replace(year=utcnow().year - 1)
        await database.write(
            lambda connection: connection.execute(
                update(uploads).where(uploads.c.id == old.id).values(updated_at=a_year_ago)
            )
        )
        # when the sweep runs with a one-day expiry
        removed = await services.uploads.expire(24 * 3600)
        # then only the old upload is gone, bytes and all
        assert removed == 1
        assert await services.uploads.expire(24 * 3600) == 0
        assert not (tmp_path / "uploads" / old.id).exists()
        assert (tmp_path / "uploads" / fresh.id).exists()
        assert (await services.uploads.get(repository, fresh.id)).offset == 0
        await services.close()

    asyncio.run(scenario())
