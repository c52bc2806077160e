"""images over time: lifecycle previews, archive status, pull-time exclusions, collection

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as table:
        table.add_column(
            sa.Column("lifecycle_evaluated_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("blobs") as table:
        table.add_column(sa.Column("deleting_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("repository_blobs") as table:
        table.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("manifests") as table:
        table.add_column(
            sa.Column("image_status", sa.String(length=16), nullable=False, server_default="ACTIVE")
        )
        table.add_column(sa.Column("last_archived_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("last_activated_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "lifecycle_previews",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_lifecycle_previews_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", name=op.f("pk_lifecycle_previews")),
    )
    op.create_table(
        "lifecycle_preview_results",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("image_digest", sa.String(length=160), nullable=False),
        sa.Column("image_tags_json", sa.Text(), nullable=False),
        sa.Column("image_pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action_type", sa.String(length=16), nullable=False),
        sa.Column("target_storage_class", sa.String(length=16), nullable=True),
        sa.Column("applied_rule_priority", sa.Integer(), nullable=False),
        sa.Column("storage_class", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["lifecycle_previews.repository_id"],
            name=op.f("fk_lifecycle_preview_results_repository_id_lifecycle_previews"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "repository_id", "position", name=op.f("pk_lifecycle_preview_results")
        ),
    )
    op.create_table(
        "pull_time_exclusions",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("principal_arn", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_pull_time_exclusions_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "registry_id", "principal_arn", name=op.f("pk_pull_time_exclusions")
        ),
    )


def downgrade() -> None:
    op.drop_table("pull_time_exclusions")
    op.drop_table("lifecycle_preview_results")
    op.drop_table("lifecycle_previews")
    with op.batch_alter_table("manifests") as table:
        table.drop_column("status_changed_at")
        table.drop_column("last_activated_at")
        table.drop_column("last_archived_at")
        table.drop_column("image_status")
    with op.batch_alter_table("repository_blobs") as table:
        table.drop_column("released_at")
    with op.batch_alter_table("blobs") as table:
        table.drop_column("deleting_since")
    with op.batch_alter_table("repositories") as table:
        table.drop_column("lifecycle_evaluated_at")
