"""repository creation templates

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repository_creation_templates",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=256), nullable=False),
        sa.Column("template_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_repository_creation_templates_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "registry_id", "prefix", name=op.f("pk_repository_creation_templates")
        ),
    )


def downgrade() -> None:
    op.drop_table("repository_creation_templates")
