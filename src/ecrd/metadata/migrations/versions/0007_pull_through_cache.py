"""pull-through cache rules and cached tags' check times

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_through_cache_rules",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=64), nullable=False),
        sa.Column("upstream_registry", sa.String(length=64), nullable=False),
        sa.Column("upstream_url", sa.String(length=256), nullable=False),
        sa.Column("upstream_prefix", sa.String(length=64), nullable=False),
        sa.Column("credential_arn", sa.String(length=612), nullable=True),
        sa.Column("custom_role_arn", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_pull_through_cache_rules_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", "prefix", name=op.f("pk_pull_through_cache_rules")),
    )
    op.create_table(
        "pull_through_tags",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_pull_through_tags_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "tag", name=op.f("pk_pull_through_tags")),
    )


def downgrade() -> None:
    op.drop_table("pull_through_tags")
    op.drop_table("pull_through_cache_rules")
