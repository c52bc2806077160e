"""listings that stay flat as a registry grows: manifests indexed by (repository_id, id) for
the image listings, and the names listed in byte order (repositories, tags, secrets, pull-time
exclusions) in the C collation on PostgreSQL, so that their unique indexes serve the catalog,
DescribeRepositories, tag list and other orders

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# (table, column, length) of the names listed in byte order.
_BYTE_ORDERED = (
    ("repositories", "name", 256),
    ("tags", "name", 128),
    ("secrets", "name", 512),
    ("pull_time_exclusions", "principal_arn", 200),
)


def upgrade() -> None:
    op.create_index("ix_manifests_repository_id_id", "manifests", ["repository_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # Rebuilds the indexes on the columns in the new order.
        for table, column, length in _BYTE_ORDERED:
            op.alter_column(
                table,
                column,
                type_=sa.String(length, collation="C"),
                existing_type=sa.String(length),
                existing_nullable=False,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in reversed(_BYTE_ORDERED):
            op.alter_column(table, column, type_=sa.String(length), existing_nullable=False)
    op.drop_index("ix_manifests_repository_id_id", "manifests")
