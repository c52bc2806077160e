"""listings that stay flat as a registry grows: manifests indexed by (repository_id, id) for
the image listings, and repository and tag names compared in byte order on PostgreSQL (the C
collation), so that their unique indexes serve the catalog, DescribeRepositories and tag list
orders

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


def upgrade() -> None:
    op.create_index("ix_manifests_repository_id_id", "manifests", ["repository_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # Rebuilds the indexes on the columns in the new order.
        op.alter_column(
            "repositories",
            "name",
            type_=sa.String(256, collation="C"),
            existing_type=sa.String(256),
            existing_nullable=False,
        )
        op.alter_column(
            "tags",
            "name",
            type_=sa.String(128, collation="C"),
            existing_type=sa.String(128),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("tags", "name", type_=sa.String(128), existing_nullable=False)
        op.alter_column("repositories", "name", type_=sa.String(256), existing_nullable=False)
    op.drop_index("ix_manifests_repository_id_id", "manifests")
