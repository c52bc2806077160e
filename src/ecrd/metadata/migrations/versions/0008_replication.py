"""account settings, replication configurations, replications and their backfills,
registry scanning configurations, signing profiles, configurations and image signatures,
vulnerability advisories and image scans

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_settings",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_account_settings_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", "name", name=op.f("pk_account_settings")),
    )
    op.create_table(
        "replication_backfills",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("destination_account", sa.String(length=12), nullable=False),
        sa.Column("destination_region", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("total_count", sa.Integer(), nullable=True),
        sa.Column("completed_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("failure_codes_json", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_replication_backfills_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replication_backfills")),
    )
    op.create_index(
        op.f("ix_replication_backfills_registry_id_started_at"),
        "replication_backfills",
        ["registry_id", "started_at"],
        unique=False,
    )
    op.create_table(
        "replication_configurations",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("configuration_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_replication_configurations_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", name=op.f("pk_replication_configurations")),
    )
    op.create_table(
        "replications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("repository_name", sa.String(length=256), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("destination_account", sa.String(length=12), nullable=False),
        sa.Column("destination_region", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("delete_replication", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_replications_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replications")),
        sa.UniqueConstraint(
            "registry_id",
            "repository_name",
            "digest",
            "destination_account",
            "destination_region",
            name="uq_replications_source_destination",
        ),
    )
    op.create_index(
        op.f("ix_replications_status_not_before"),
        "replications",
        ["status", "not_before"],
        unique=False,
    )
    op.create_table(
        "replication_backfill_results",
        sa.Column("backfill_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("repository_name", sa.String(length=256), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["backfill_id"],
            ["replication_backfills.id"],
            name=op.f("fk_replication_backfill_results_backfill_id_replication_backfills"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "backfill_id", "position", name=op.f("pk_replication_backfill_results")
        ),
    )
    op.create_index(
        op.f("ix_replication_backfill_results_backfill_id_status_position"),
        "replication_backfill_results",
        ["backfill_id", "status", "position"],
        unique=False,
    )

    op.create_table(
        "registry_scanning_configurations",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("configuration_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_registry_scanning_configurations_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", name=op.f("pk_registry_scanning_configurations")),
    )

    op.create_table(
        "signing_profiles",
        sa.Column("arn", sa.String(length=200), nullable=False),
        sa.Column("key_type", sa.String(length=16), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("arn", name=op.f("pk_signing_profiles")),
    )
    op.create_table(
        "image_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("repository_name", sa.String(length=256), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("profile_arn", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_reason", sa.String(length=512), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_image_signatures_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_signatures")),
        sa.UniqueConstraint(
            "registry_id",
            "repository_name",
            "digest",
            "profile_arn",
            name="uq_image_signatures_image_profile",
        ),
    )
    op.create_index(
        op.f("ix_image_signatures_status_not_before"),
        "image_signatures",
        ["status", "not_before"],
        unique=False,
    )
    op.create_table(
        "signing_configurations",
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("configuration_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry_id"],
            ["registries.id"],
            name=op.f("fk_signing_configurations_registry_id_registries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", name=op.f("pk_signing_configurations")),
    )

    op.create_table(
        "vulnerabilities",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("cvss_vector", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulnerabilities")),
    )
    op.create_table(
        "vulnerability_packages",
        sa.Column("vulnerability_id", sa.String(length=128), nullable=False),
        sa.Column("ecosystem", sa.String(length=64), nullable=False),
        sa.Column("package", sa.String(length=256), nullable=False),
        sa.Column("affected_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vulnerability_id"],
            ["vulnerabilities.id"],
            name=op.f("fk_vulnerability_packages_vulnerability_id_vulnerabilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "vulnerability_id", "ecosystem", "package", name=op.f("pk_vulnerability_packages")
        ),
    )
    op.create_index(
        op.f("ix_vulnerability_packages_ecosystem_package"),
        "vulnerability_packages",
        ["ecosystem", "package"],
        unique=False,
    )
    op.create_table(
        "image_scans",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("findings_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_image_scans_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_image_scans")),
    )
    op.create_index(
        op.f("ix_image_scans_status_started_at"),
        "image_scans",
        ["status", "started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_image_scans_status_started_at"), table_name="image_scans")
    op.drop_table("image_scans")
    op.drop_index(
        op.f("ix_vulnerability_packages_ecosystem_package"), table_name="vulnerability_packages"
    )
    op.drop_table("vulnerability_packages")
    op.drop_table("vulnerabilities")
    op.drop_table("signing_configurations")
    op.drop_index(op.f("ix_image_signatures_status_not_before"), table_name="image_signatures")
    op.drop_table("image_signatures")
    op.drop_table("signing_profiles")
    op.drop_table("registry_scanning_configurations")
    op.drop_index(
        op.f("ix_replication_backfill_results_backfill_id_status_position"),
        table_name="replication_backfill_results",
    )
    op.drop_table("replication_backfill_results")
    op.drop_index(op.f("ix_replications_status_not_before"), table_name="replications")
    op.drop_table("replications")
    op.drop_table("replication_configurations")
    op.drop_index(
        op.f("ix_replication_backfills_registry_id_started_at"), table_name="replication_backfills"
    )
    op.drop_table("replication_backfills")
    op.drop_table("account_settings")
