"""Upload sessions: the row is the whole state, so any process can continue any upload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import Repository, Upload, as_utc, utcnow
from ecrd.metadata.schema import repositories, uploads
from ecrd.metadata.statements import repository_exists


def upload_record(row: Any) -> Upload:
    return Upload(
        id=row.id,
        repository_id=row.repository_id,
        offset=row.offset,
        driver_state_json=row.driver_state_json,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


# Uploads open in one registry, counted no further than the bound (a full registry costs no
# more than that to check). Built once: the statement is the same for every upload.
_OPEN_IN_REGISTRY = select(func.count()).select_from(
    select(uploads.c.id)
    .join(repositories, repositories.c.id == uploads.c.repository_id)
    .where(repositories.c.registry_id == bindparam("registry_id"))
    .limit(bindparam("limit"))
    .subquery()
)


_BY_ID = select(uploads).where(
    (uploads.c.id == bindparam("upload_id"))
    & (uploads.c.repository_id == bindparam("repository_id"))
)

# Statements of every push, built once with bound parameters: building one with its values
# in it (and computing its cache key) cost more than running it.
_INSERT = insert(uploads)
_ADVANCE = (
    update(uploads)
    .where((uploads.c.id == bindparam("upload_id")) & (uploads.c.offset == bindparam("old_offset")))
    .values(
        offset=bindparam("new_offset"),
        driver_state_json=bindparam("driver_state_json"),
        updated_at=bindparam("updated_at"),
    )
)


class UploadStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self,
        upload_id: str,
        repository: Repository,
        driver_state_json: str,
        max_open_in_registry: int,
    ) -> Upload | None:
        """A new upload row; None when the repository's registry already has
        `max_open_in_registry` open uploads (counted in the same transaction)."""
        now = utcnow()
        row = {
            "id": upload_id,
            "repository_id": repository.id,
            "offset": 0,
            "driver_state_json": driver_state_json,
            "created_at": now,
            "updated_at": now,
        }
        bound = {"registry_id": repository.registry_id, "limit": max_open_in_registry}

        def work(connection: Connection) -> bool:
            if connection.execute(_OPEN_IN_REGISTRY, bound).scalar_one() >= max_open_in_registry:
                return False
            connection.execute(_INSERT, row)
            return True

        if not await self._database.write(work):
            return None
        return Upload(upload_id, repository.id, 0, driver_state_json, now, now)

    async def open_in_registry(self, registry_id: int, limit: int) -> int:
        """How many uploads are open in the registry, counting no further than `limit`."""
        bound = {"registry_id": registry_id, "limit": limit}
        return int(
            await self._database.read(lambda c: c.execute(_OPEN_IN_REGISTRY, bound).scalar_one())
        )

    async def repository_exists(self, repository_id: int) -> bool:
        return await self._database.read(
            lambda connection: repository_exists(connection, repository_id)
        )

    async def count(self) -> int:
        """Open uploads in every registry (for the operator's metrics)."""
        query = select(func.count()).select_from(uploads)
        return int(await self._database.read(lambda c: c.execute(query).scalar_one()))

    async def get(self, repository_id: int, upload_id: str) -> Upload | None:
        parameters = {"upload_id": upload_id, "repository_id": repository_id}

        row = await self._database.read_first(_BY_ID, parameters)
        return None if row is None else upload_record(row)

    async def advance(
        self, upload_id: str, old_offset: int, new_offset: int, driver_state_json: str
    ) -> bool:
        """Move the offset forward and keep the driver state that goes with it, if the offset
        still is `old_offset`; False if another writer won (its state stands)."""
        parameters = {
            "upload_id": upload_id,
            "old_offset": old_offset,
            "new_offset": new_offset,
            "driver_state_json": driver_state_json,
            "updated_at": utcnow(),
        }

        def work(connection: Connection) -> bool:
            return bool(connection.execute(_ADVANCE, parameters).rowcount)

        return await self._database.write(work)

    async def delete(self, upload_id: str) -> bool:
        def work(connection: Connection) -> bool:
            return bool(
                connection.execute(delete(uploads).where(uploads.c.id == upload_id)).rowcount
            )

        return await self._database.write(work)

    async def existing(self, upload_ids: list[str]) -> set[str]:
        """Those of `upload_ids` that have a row."""
        if not upload_ids:
            return set()
        query = select(uploads.c.id).where(uploads.c.id.in_(upload_ids))
        return await self._database.read(
            lambda connection: {row.id for row in connection.execute(query)}
        )

    async def stale(self, untouched_since: datetime, limit: int) -> list[Upload]:
        """Uploads not written since `untouched_since`, oldest first, at most `limit`."""
        query = (
            select(uploads)
            .where(uploads.c.updated_at < untouched_since)
            .order_by(uploads.c.updated_at)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [upload_record(row) for row in connection.execute(query)]
        )
