"""continuous scans (the advisories' import time, each scan's packages and the import time its
findings reflect) and the pusher of an image queued for signing

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vulnerabilities") as table:
        table.add_column(sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
        table.create_index("ix_vulnerabilities_imported_at", ["imported_at"])
    with op.batch_alter_table("image_scans") as table:
        table.add_column(sa.Column("packages_json", sa.Text(), nullable=True))
        table.add_column(sa.Column("advisories_as_of", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("checked_as_of", sa.DateTime(timezone=True), nullable=True))
        table.create_index("ix_image_scans_status_checked_as_of", ["status", "checked_as_of"])
    with op.batch_alter_table("image_signatures") as table:
        table.add_column(sa.Column("pusher_account_id", sa.String(length=12), nullable=True))
        table.add_column(sa.Column("pusher_user_name", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("pusher_user_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_signatures") as table:
        table.drop_column("pusher_user_id")
        table.drop_column("pusher_user_name")
        table.drop_column("pusher_account_id")
    with op.batch_alter_table("image_scans") as table:
        table.drop_index("ix_image_scans_status_checked_as_of")
        table.drop_column("checked_as_of")
        table.drop_column("advisories_as_of")
        table.drop_column("packages_json")
    with op.batch_alter_table("vulnerabilities") as table:
        table.drop_index("ix_vulnerabilities_imported_at")
        table.drop_column("imported_at")
