"""Direct reads on SQLite give the rows SQLAlchemy gives, see every committed write, and
refuse the statements they cannot run."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
    update,
)

from ecrd.metadata.database import Database
from ecrd.metadata.direct_reads import DirectRead

_metadata = MetaData()
parents = Table(
    "parents",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String, nullable=False),
    Column("name", String, nullable=False),
)
children = Table(
    "children",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, nullable=False),
    Column("made_at", DateTime, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("payload", LargeBinary, nullable=True),
    Column("note", String, nullable=True),
)
# A constant in the statement (kind), bound parameters, an outer join (NULLs), a label, and
# columns of every type the store's hot reads return.
PARENT_AND_CHILD = (
    select(
        parents.c.id,
        parents.c.name,
        children.c.id.label("child_id"),
        children.c.made_at,
        children.c.flag,
        children.c.payload,
        children.c.note,
    )
    .select_from(
        parents.outerjoin(
            children,
            (children.c.parent_id == parents.c.id) & (children.c.id == bindparam("child")),
        )
    )
    .where((parents.c.kind == "team") & (parents.c.name == bindparam("name")))
)
MADE_AT = datetime(2026, 12, 3, 10, 11, 12, 345678)


def _database(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    engine = create_engine(url)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(parents),
            [
                {"id": 1, "kind": "team", "name": "a"},
                {"id": 2, "kind": "other", "name": "b"},
                {"id": 3, "kind": "team", "name": "ü/ñ"},
            ],
        )
        connection.execute(
            insert(children),
            [
                {
                    "id": 10,
                    "parent_id": 1,
                    "made_at": MADE_AT,
                    "flag": True,
                    "payload": b"\0\xff",
                    "note": None,
                },
                {
                    "id": 11,
                    "parent_id": 1,
                    "made_at": MADE_AT,
                    "flag": False,
                    "payload": None,
                    "note": "n",
                },
            ],
        )
    engine.dispose()
    return Database(url)


def _through_sqlalchemy(database: Database, parameters: dict[str, Any]) -> Any:
    async def read() -> Any:
        return await database.read(
            lambda connection: connection.execute(PARENT_AND_CHILD, parameters).first()
        )

    return asyncio.run(read())


@pytest.mark.parametrize(
    "parameters",
    [
        {"name": "a", "child": 10},  # every column set
        {"name": "a", "child": 11},  # NULL payload, false flag
        {"name": "a", "child": 99},  # the outer join finds no child: NULLs
        {"name": "ü/ñ", "child": 10},  # non-ASCII, no child of this parent
        {"name": "b", "child": 10},  # kind is not the constant: no row
        {"name": "zz", "child": 10},  # no row
    ],
)
def test_a_direct_read_gives_the_row_sqlalchemy_gives(
    tmp_path: Path, parameters: dict[str, Any]
) -> None:
    database = _database(tmp_path)

    async def direct() -> Any:
        try:
            return await database.read_first(PARENT_AND_CHILD, parameters)
        finally:
            await database.close()

    expected = _through_sqlalchemy(database, parameters)
    row = asyncio.run(direct())
    if expected is None:
        assert row is None
        return
    assert tuple(row) == tuple(expected)
    assert row._mapping == dict(expected._mapping)
    assert row.child_id == expected.child_id
    if parameters == {"name": "a", "child": 10}:
        # the types' own processors ran: a datetime, a bool, bytes, not SQLite's text and ints
        assert row.made_at == MADE_AT
        assert row.flag is True
        assert row.payload == b"\0\xff"


def test_a_direct_read_sees_what_was_committed_after_the_previous_one(tmp_path: Path) -> None:
    database = _database(tmp_path)
    renamed = update(parents).where(parents.c.id == 1).values(name="renamed")

    async def main() -> None:
        try:
            assert await database.read_first(PARENT_AND_CHILD, {"name": "a", "child": 10})
            await database.write(lambda connection: connection.execute(renamed))
            # no snapshot of the first read is left open on the direct connection
            assert await database.read_first(PARENT_AND_CHILD, {"name": "a", "child": 10}) is None
            row = await database.read_first(PARENT_AND_CHILD, {"name": "renamed", "child": 10})
            assert row is not None and row.child_id == 10
        finally:
            await database.close()

    asyncio.run(main())


def test_another_thread_reads_through_sqlalchemy_and_gets_the_same_row(tmp_path: Path) -> None:
    database = _database(tmp_path)
    parameters = {"name": "a", "child": 10}
    rows: list[Any] = []

    async def read() -> None:
        rows.append(await database.read_first(PARENT_AND_CHILD, parameters))

    asyncio.run(read())  # this thread takes the direct connection
    other = threading.Thread(target=lambda: asyncio.run(read()))
    other.start()
    other.join(timeout=30)
    asyncio.run(database.close())
    assert len(rows) == 2
    assert tuple(rows[0]) == tuple(rows[1])
    assert rows[0].made_at == rows[1].made_at == MADE_AT


def test_statements_a_direct_read_cannot_run_are_refused_when_made(tmp_path: Path) -> None:
    dialect = create_engine(f"sqlite:///{tmp_path / 'x.db'}").dialect
    with pytest.raises(ValueError, match="expand"):
        DirectRead(
            select(parents.c.id).where(parents.c.id.in_(bindparam("ids", expanding=True))), dialect
        )
    with pytest.raises(ValueError, match="uniquely named"):
        DirectRead(select(parents.c.id, children.c.id), dialect)
