"""Secrets Manager secrets (values sealed), and sealed signing keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:30:00

Signing keys get `secret_sealed`, and `secret_hex` may be NULL: rows written before keep their
plain hex until the next start seals them (the server cannot seal here: the keyring is not
the migration's to read).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("arn", sa.String(length=640), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kms_key_id", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accessed_on", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purge_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint(
            "account_id", "region", "name", name=op.f("uq_secrets_account_id_region_name")
        ),
        sa.UniqueConstraint("arn", name=op.f("uq_secrets_arn")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_secrets_account_id_region_created_at"),
        "secrets",
        ["account_id", "region", "created_at"],
    )
    op.create_index(op.f("ix_secrets_purge_at"), "secrets", ["purge_at"])
    op.create_table(
        "secret_tags",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_tags_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "key", name=op.f("pk_secret_tags")),
    )
    op.create_table(
        "secret_versions",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("sealed_value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_versions_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "version_id", name=op.f("pk_secret_versions")),
    )
    op.create_index(
        op.f("ix_secret_versions_secret_id_created_at"),
        "secret_versions",
        ["secret_id", "created_at"],
    )
    op.create_table(
        "secret_version_stages",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=256), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id", "version_id"],
            ["secret_versions.secret_id", "secret_versions.version_id"],
            name=op.f("fk_secret_version_stages_secret_id_secret_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "stage", name=op.f("pk_secret_version_stages")),
    )
    with op.batch_alter_table("signing_keys") as table:
        table.add_column(sa.Column("secret_sealed", sa.Text(), nullable=True))
        table.alter_column("secret_hex", existing_type=sa.String(length=128), nullable=True)


def downgrade() -> None:
    # Sealed signing keys cannot go back to plain hex without the keyring: drop them (tokens
    # they signed stop verifying; the next start makes a new key).
    op.execute("DELETE FROM signing_keys WHERE secret_hex IS NULL")
    with op.batch_alter_table("signing_keys") as table:
        table.alter_column("secret_hex", existing_type=sa.String(length=128), nullable=False)
        table.drop_column("secret_sealed")
    op.drop_table("secret_version_stages")
    op.drop_index(op.f("ix_secret_versions_secret_id_created_at"), table_name="secret_versions")
    op.drop_table("secret_versions")
    op.drop_table("secret_tags")
    op.drop_index(op.f("ix_secrets_purge_at"), table_name="secrets")
    op.drop_index(op.f("ix_secrets_account_id_region_created_at"), table_name="secrets")
    op.drop_table("secrets")
