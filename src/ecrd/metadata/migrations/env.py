"""Alembic environment: runs on the connection Database.migrate() hands over."""

from __future__ import annotations

from alembic import context

from ecrd.metadata.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ecrd.metadata.database.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
