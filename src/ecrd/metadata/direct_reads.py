"""The hottest point reads on SQLite, run straight on the driver's connection.

SQLAlchemy builds these statements and compiles them, once. Running one through its Connection
then costs ~65 µs of Python per read (a pool checkout and check-in, an execution context, a
result object, rows keyed by name) against ~5 µs in sqlite3 itself, and a manifest pull, a
blob pull, or a step of a push is one such read. `DirectRead` keeps what the compiler made,
the SQL text, the order of its parameters, and the column types' own bind and result
processors, and runs it on one connection kept for the event loop's thread: SQLite's reads
never wait for a lock in WAL mode, and each is one autocommit statement whose cursor is closed
at once, so no read holds a snapshot past its statement.

Only statements with named parameters and uniquely named columns, and without expanding (IN)
parameters, qualify; `DirectRead` refuses any other when it is made.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Dialect, Select

Processor = Callable[[Any], Any]


class DirectRead:
    """One SELECT, compiled for SQLite, read a row at a time off the driver's cursor."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("a direct read needs a dialect with positional parameters")
        self.sql = compiled.string
        # For each ? in order: the key of a parameter the caller gives, or a constant.
        self._parameters: list[tuple[str | None, Any, Processor | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"a direct read cannot expand parameter {bind.key!r}")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._parameters.append((bind.key, None, processor))
            else:
                value = bind.effective_value
                self._parameters.append(
                    (None, value if processor is None else processor(value), None)
                )
        keys = [column.key or "" for column in statement.selected_columns]
        if "" in keys or len(set(keys)) != len(keys):
            raise ValueError("a direct read needs uniquely named columns")
        self._processors = [
            (index, processor)
            for index, column in enumerate(statement.selected_columns)
            if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None))
            is not None
        ]
        self._row = _row_class(keys)

    def first(self, connection: sqlite3.Connection, parameters: Mapping[str, Any]) -> Any:
        """The first row (attributes and `_mapping` by column name, as SQLAlchemy's rows
        have them), or None."""
        values = [
            constant
            if key is None
            else (parameters[key] if processor is None else processor(parameters[key]))
            for key, constant, processor in self._parameters
        ]
        cursor = connection.execute(self.sql, values)
        try:
            raw = cursor.fetchone()
        finally:
            # Resets the statement: SQLite's read snapshot ends with it.
            cursor.close()
        if raw is None:
            return None
        if self._processors:
            raw = list(raw)
            for index, processor in self._processors:
                raw[index] = processor(raw[index])
        return self._row._make(raw)


def _row_class(keys: list[str]) -> Any:
    base = namedtuple("DirectRow", keys)  # type: ignore[misc]

    class DirectRow(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(self._fields, self, strict=True))

    return DirectRow
