"""The metadata schema, for the whole product.

    registries ─┬─< repositories ─┬─< repository_tags      (ECR resource tags)
                │                 ├─< repository_blobs >── blobs
                │                 ├─< manifests ─┬─< manifest_blobs     (config, layers)
                │                 │              ├─< manifest_children  (index entries)
                │                 │              └─< tags
                │                 └─< uploads
                └ (account_id, region, kind) unique

    iam_users ─< access_keys      (an access key with no user is its account's root key)

    signing_keys                  (token and URL signing keys, newest signs, all unexpired verify)
    secrets ─┬─< secret_tags      (Secrets Manager secrets, per account and region)
             └─< secret_versions ─< secret_version_stages   (values sealed; AWSCURRENT, ...)
    job_schedules ─< job_runs     (the job runner's leases and its record of runs)

    repositories ─< lifecycle_previews ─< lifecycle_preview_results
    registries ─< pull_time_exclusions   (principals whose pulls leave lastRecordedPullTime)
    registries ─< repository_creation_templates   (what repositories made on ECR's behalf get)
    registries ─< pull_through_cache_rules        (namespaces cached from an upstream registry)
    repositories ─< pull_through_tags             (when a cached tag was last checked upstream)
    registries ─< account_settings                (ECR's account settings, per registry)
    registries ─< replication_configurations      (the registry's replication rules, as JSON)
    registries ─< replications                    (per image and destination: queue and status)
    registries ─< replication_backfills ─< replication_backfill_results
    registries ─< registry_scanning_configurations  (scan type and scanning rules, as JSON)
    signing_profiles                              (keys ecrd signs with, per profile ARN; sealed)
    registries ─< signing_configurations          (the registry's signing rules, as JSON)
    registries ─< image_signatures                (per image and profile: queue and status)
    vulnerabilities ─< vulnerability_packages     (OSV advisories `ecrd vulndb import` loaded)
    repositories ─< image_scans                   (per image: the scan's status and findings)

Blobs are stored once per store and keyed by digest; a repository may use one only through a
repository_blobs link. What a manifest references is kept as rows so that "is this in use",
garbage collection and referrers are plain indexed queries. Every list query has an index.
Changing this file means adding an Alembic migration under migrations/versions.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = DateTime(timezone=True)
DIGEST = String(160)  # "sha512:" + 128 hex


def byte_ordered(length: int) -> String:
    """A name listed in byte order (the tag list and catalog orders, ECR's and Secrets
    Manager's): PostgreSQL compares it with the C collation, so that `ORDER BY`, keyset pages
    and its indexes all agree on that order (SQLite compares bytes already)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    # "private" (ECR) or "public" (ECR Public, addressed by alias).
    Column("kind", String(16), nullable=False),
    Column("alias", String(64), nullable=True, unique=True),
    Column("policy_text", Text, nullable=True),
    # Registry-wide configuration as JSON: scanning, replication, catalog data, ...
    Column("settings_json", Text, nullable=False, default="{}"),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("account_id", "region", "kind"),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", byte_ordered(256), nullable=False),
    Column("arn", String(512), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("image_tag_mutability", String(32), nullable=False, default="MUTABLE"),
    # JSON list of {"filterType", "filter"} exempting tags from the mutability setting.
    Column("tag_mutability_exclusions_json", Text, nullable=False, default="[]"),
    Column("scan_on_push", Boolean, nullable=False, default=False),
    Column("encryption_type", String(16), nullable=False, default="AES256"),
    Column("kms_key", String(2048), nullable=True),
    Column("policy_text", Text, nullable=True),
    Column("lifecycle_policy_text", Text, nullable=True),
    # When the lifecycle policy last ran over the repository (GetLifecyclePolicy's
    # lastEvaluatedAt).
    Column("lifecycle_evaluated_at", Timestamp, nullable=True),
    # ECR Public catalog data as JSON.
    Column("catalog_data_json", Text, nullable=True),
    UniqueConstraint("registry_id", "name"),
)

repository_tags = Table(
    "repository_tags",
    metadata,
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # Set when the garbage collector has claimed the blob to delete its bytes; a push of the
    # same digest that finds it set waits for the row to go, then stores the bytes anew.
    Column("deleting_since", Timestamp, nullable=True),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("blob_digest", ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", Timestamp, nullable=False),
    # When the last manifest of the repository that referenced the blob was deleted: the
    # garbage collector's grace window for an unreferenced link runs from here (or from
    # created_at, for a blob no manifest ever referenced).
    Column("released_at", Timestamp, nullable=True),
    Index(None, "blob_digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    # OCI artifactType, or the config media type of an image manifest (referrers' rule).
    Column("artifact_type", String(255), nullable=True),
    Column("config_media_type", String(255), nullable=True),
    Column("subject_digest", DIGEST, nullable=True),
    Column("annotations_json", Text, nullable=True),
    # ECR's imageSizeInBytes: config plus layers; for an index, the largest image it lists.
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("pushed_at", Timestamp, nullable=False),
    Column("last_pulled_at", Timestamp, nullable=True),
    # ECR's imageStatus: ACTIVE (storage class STANDARD), ARCHIVED (ARCHIVE, not pullable) or
    # ACTIVATING (being restored from ARCHIVE, not pullable yet).
    Column("image_status", String(16), nullable=False, default="ACTIVE", server_default="ACTIVE"),
    Column("last_archived_at", Timestamp, nullable=True),
    Column("last_activated_at", Timestamp, nullable=True),
    # When the status last changed (an ACTIVATING image becomes ACTIVE a while after it).
    Column("status_changed_at", Timestamp, nullable=True),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
    Index(None, "repository_id", "pushed_at"),
    # Listings page through a repository's images in id (push) order.
    Index(None, "repository_id", "id"),
)

manifest_blobs = Table(
    "manifest_blobs",
    metadata,
    Column("manifest_id", ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("blob_digest", DIGEST, primary_key=True),
    Index(None, "blob_digest"),
)

manifest_children = Table(
    "manifest_children",
    metadata,
    Column("manifest_id", ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("child_digest", DIGEST, primary_key=True),
    Index(None, "child_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", byte_ordered(128), primary_key=True),
    Column("manifest_id", ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("offset", BigInteger, nullable=False, default=0),
    # Blob store driver state as JSON (for example an S3 multipart upload id).
    Column("driver_state_json", Text, nullable=False, default="{}"),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "updated_at"),
    Index(None, "repository_id"),
)

iam_users = Table(
    "iam_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(64), nullable=False),
    # JSON list of the identity policies (IAM JSON texts) attached to the user.
    Column("policies_json", Text, nullable=False, default="[]"),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("account_id", "name"),
    # Tokens name a user by id: SQLite must never hand a deleted user's id to a new one.
    sqlite_autoincrement=True,
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    # SigV4 derives each day's signing key from the secret itself, so the secret is kept as
    # issued (as AWS must too); only the metadata store holds it.
    Column("secret_access_key", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("user_id", ForeignKey("iam_users.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "user_id"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    # The key's generation: 1, 2, ... The newest signs; every generation not yet expired
    # verifies. Generations are given explicitly, so two processes adding the same next one
    # conflict on this key and only one key is made.
    Column("generation", Integer, primary_key=True, autoincrement=False),
    # 32 random bytes, hex: only in rows from before keys were sealed (ecrd seals them at its
    # next start); NULL in every row with `secret_sealed`.
    Column("secret_hex", String(128), nullable=True),
    # The 32 bytes sealed with the keyring (sealing.py), bound to the generation.
    Column("secret_sealed", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # Set when a newer key replaces this one: the last moment a token it signed can be valid.
    Column("expires_at", Timestamp, nullable=True),
)

job_schedules = Table(
    "job_schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    # When the next scheduled run is due; a process takes the run by moving this forward.
    Column("next_run_at", Timestamp, nullable=False),
    # Who runs the job now, and until when the lease holds (a process that died lets go of
    # it when the lease runs out).
    Column("lease_holder", String(128), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    # "schedule" or "command" (ecrd jobs run).
    Column("trigger", String(16), nullable=False),
    Column("holder", String(128), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    # "running", "succeeded" or "failed".
    Column("outcome", String(16), nullable=False),
    # What the run did, as a JSON object of counts ({"removed": 3}).
    Column("counts_json", Text, nullable=False, default="{}"),
    Column("error", Text, nullable=True),
    Index(None, "name", "started_at"),
    sqlite_autoincrement=True,
)

lifecycle_previews = Table(
    "lifecycle_previews",
    metadata,
    # One preview per repository, as in ECR: a new one replaces the last.
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("policy_text", Text, nullable=False),
    # IN_PROGRESS, COMPLETE or FAILED as stored; EXPIRED is how an old one reads.
    Column("status", String(16), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
)

lifecycle_preview_results = Table(
    "lifecycle_preview_results",
    metadata,
    Column(
        "repository_id",
        ForeignKey("lifecycle_previews.repository_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The result's place in the preview's answer, for keyset pages.
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("image_digest", DIGEST, nullable=False),
    # JSON list of the image's tags when the preview ran.
    Column("image_tags_json", Text, nullable=False, default="[]"),
    Column("image_pushed_at", Timestamp, nullable=False),
    # EXPIRE or TRANSITION, and for TRANSITION the target storage class.
    Column("action_type", String(16), nullable=False),
    Column("target_storage_class", String(16), nullable=True),
    Column("applied_rule_priority", Integer, nullable=False),
    # The image's storage class when the preview ran (STANDARD or ARCHIVE).
    Column("storage_class", String(16), nullable=False),
)

pull_time_exclusions = Table(
    "pull_time_exclusions",
    metadata,
    Column(
        "registry_id",
        ForeignKey("registries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # An IAM user or role ARN whose pulls do not update lastRecordedPullTime.
    Column("principal_arn", byte_ordered(200), primary_key=True),
    Column("created_at", Timestamp, nullable=False),
)

repository_creation_templates = Table(
    "repository_creation_templates",
    metadata,
    Column(
        "registry_id",
        ForeignKey("registries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # A repository namespace (`team/`, `prod/app`) or ROOT, which matches every name.
    Column("prefix", String(256), primary_key=True),
    # What repositories made on ECR's behalf under the prefix get, as ECR's API names it
    # (description, appliedFor, encryptionConfiguration, resourceTags, imageTagMutability,
    # imageTagMutabilityExclusionFilters, repositoryPolicy, lifecyclePolicy, customRoleArn).
    Column("template_json", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

pull_through_cache_rules = Table(
    "pull_through_cache_rules",
    metadata,
    Column(
        "registry_id",
        ForeignKey("registries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The cache's namespace (`docker-hub`, without ECR's implied slash) or ROOT.
    Column("prefix", String(64), primary_key=True),
    Column("upstream_registry", String(64), nullable=False),
    Column("upstream_url", String(256), nullable=False),
    Column("upstream_prefix", String(64), nullable=False),
    Column("credential_arn", String(612), nullable=True),
    Column("custom_role_arn", String(2048), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

pull_through_tags = Table(
    "pull_through_tags",
    metadata,
    Column(
        "repository_id",
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(128), primary_key=True),
    # When the tag was last checked against the upstream (and found, or the upstream was out
    # of reach): the next check is due a refresh interval later.
    Column("checked_at", Timestamp, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", byte_ordered(512), nullable=False),
    # arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
    Column("arn", String(640), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    # Recorded and shown; values are sealed with ecrd's keyring whatever it names.
    Column("kms_key_id", String(2048), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("changed_at", Timestamp, nullable=False),
    # The day (midnight UTC) a value was last read: AWS keeps only the date.
    Column("accessed_on", Timestamp, nullable=True),
    # Set by DeleteSecret: when it was called, and when the secret goes for good (its
    # DeletionDate). A row past `purge_at` reads as gone and is deleted by the next write.
    Column("deleted_at", Timestamp, nullable=True),
    Column("purge_at", Timestamp, nullable=True),
    UniqueConstraint("account_id", "region", "name"),
    Index(None, "account_id", "region", "created_at"),
    Index(None, "purge_at"),
    # Values are sealed to their secret's ARN, and SQLite must not hand a purged secret's id
    # to a new one (tags and versions go with their row anyway).
    sqlite_autoincrement=True,
)

secret_tags = Table(
    "secret_tags",
    metadata,
    Column("secret_id", ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

secret_versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    # The ClientRequestToken that made it (a UUID when the client gave none).
    Column("version_id", String(64), primary_key=True),
    # The value (a kind byte, then the SecretString's UTF-8 or the SecretBinary) sealed with
    # the keyring and bound to the secret's ARN and this version id: `s1:<key id>:...`.
    Column("sealed_value", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "secret_id", "created_at"),
)

secret_version_stages = Table(
    "secret_version_stages",
    metadata,
    # A staging label (AWSCURRENT, AWSPREVIOUS, AWSPENDING or the client's own) is on at
    # most one version of its secret; a version with none is deprecated.
    Column("secret_id", Integer, primary_key=True),
    Column("stage", String(256), primary_key=True),
    Column("version_id", String(64), nullable=False),
    ForeignKeyConstraint(
        ["secret_id", "version_id"],
        ["secret_versions.secret_id", "secret_versions.version_id"],
        ondelete="CASCADE",
    ),
)

account_settings = Table(
    "account_settings",
    metadata,
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    # REGISTRY_POLICY_SCOPE, BASIC_SCAN_TYPE_VERSION, BLOB_MOUNTING; a missing row is ECR's
    # default for the setting.
    Column("name", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

replication_configurations = Table(
    "replication_configurations",
    metadata,
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    # The ReplicationConfiguration as PutReplicationConfiguration took it (checked); read in
    # the transaction of every push and delete that may have to be replicated.
    Column("configuration_json", Text, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

replications = Table(
    "replications",
    metadata,
    Column("id", Integer, primary_key=True),
    # The source: a registry, a repository name (the destination uses the same name) and an
    # image digest. The row outlives a deleted source repository until it is replicated.
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository_name", String(256), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("destination_account", String(12), nullable=False),
    Column("destination_region", String(32), nullable=False),
    # IN_PROGRESS (queued or being copied), COMPLETE or FAILED (with failure_code).
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    # Whether deletes and tag removals of the source reach this destination.
    Column("delete_replication", Boolean, nullable=False),
    # Bumped by every change that queues the row again: a worker marks its row done only if
    # no change came while it copied.
    Column("generation", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("queued_at", Timestamp, nullable=False),
    Column("not_before", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint(
        "registry_id",
        "repository_name",
        "digest",
        "destination_account",
        "destination_region",
        # The generated name would pass PostgreSQL's 63 characters.
        name="uq_replications_source_destination",
    ),
    # The worker's query: what is due, oldest change first.
    Index(None, "status", "not_before"),
)

replication_backfills = Table(
    "replication_backfills",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("destination_account", String(12), nullable=False),
    Column("destination_region", String(32), nullable=False),
    # PREPARING, IN_PROGRESS, STOPPING, then COMPLETE, FAILED or STOPPED.
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    # Progress: null until preparation ends, as ECR shows it.
    Column("total_count", Integer, nullable=True),
    Column("completed_count", Integer, nullable=False),
    Column("failed_count", Integer, nullable=False),
    Column("failure_codes_json", Text, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Index(None, "registry_id", "started_at"),
)

replication_backfill_results = Table(
    "replication_backfill_results",
    metadata,
    Column(
        "backfill_id",
        ForeignKey("replication_backfills.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # One row per image and tag (an untagged image has tag ""), in the order replicated.
    Column("position", Integer, primary_key=True),
    Column("repository_name", String(256), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("tag", String(128), nullable=False),
    # PENDING until replicated, then COMPLETE or FAILED.
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    Index(None, "backfill_id", "status", "position"),
)

registry_scanning_configurations = Table(
    "registry_scanning_configurations",
    metadata,
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    # {"scanType": ..., "rules": [...]} as PutRegistryScanningConfiguration took it (checked).
    Column("configuration_json", Text, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

signing_profiles = Table(
    "signing_profiles",
    metadata,
    # arn:aws:signer:<region>:<account>:/signing-profiles/<name>, as signing rules name it.
    Column("arn", String(200), primary_key=True),
    # ecdsa-p256, ecdsa-p384 or rsa-3072: the key and the JWS alg (ES256, ES384, PS384).
    Column("key_type", String(16), nullable=False),
    # The private key (PKCS#8 DER) sealed with the keyring, bound to the ARN: `s1:<key id>:...`.
    Column("private_key_sealed", Text, nullable=False),
    # The self-signed code-signing certificate (PEM) that verifiers put in their trust store.
    Column("certificate_pem", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

signing_configurations = Table(
    "signing_configurations",
    metadata,
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    Column("configuration_json", Text, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

image_signatures = Table(
    "image_signatures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository_name", String(256), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("profile_arn", String(200), nullable=False),
    # IN_PROGRESS (queued or being signed), COMPLETE, or FAILED with a code and a reason.
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    Column("failure_reason", String(512), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("queued_at", Timestamp, nullable=False),
    Column("not_before", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # Who pushed the image: ECR signs with the pusher's identity, which needs
    # signer:SignPayload on the profile. None when ecrd itself stored it (a pull-through
    # cache's fetch), which is signed without that check.
    Column("pusher_account_id", String(12), nullable=True),
    Column("pusher_user_name", String(64), nullable=True),
    Column("pusher_user_id", Integer, nullable=True),
    UniqueConstraint(
        "registry_id",
        "repository_name",
        "digest",
        "profile_arn",
        name="uq_image_signatures_image_profile",
    ),
    Index(None, "status", "not_before"),
)

vulnerabilities = Table(
    "vulnerabilities",
    metadata,
    Column("id", String(128), primary_key=True),  # the OSV id
    Column("name", String(128), nullable=False),  # the CVE id when it has one
    Column("summary", Text, nullable=False),
    Column("uri", String(1024), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("cvss_vector", String(256), nullable=True),
    # When `ecrd vulndb import` stored it: the newest is when the advisories last changed
    # (vulnerabilitySourceUpdatedAt; continuous scans rematch images older than it).
    Column("imported_at", Timestamp, nullable=True),
    Index(None, "imported_at"),
)

vulnerability_packages = Table(
    "vulnerability_packages",
    metadata,
    Column(
        "vulnerability_id",
        ForeignKey("vulnerabilities.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("ecosystem", String(64), primary_key=True),  # `Debian:12`, `Alpine:v3.19`, `PyPI`
    Column("package", String(256), primary_key=True),
    # The OSV `affected` entry's ranges and versions.
    Column("affected_json", Text, nullable=False),
    # A scan asks for the advisories of its packages.
    Index(None, "ecosystem", "package"),
)

image_scans = Table(
    "image_scans",
    metadata,
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    # IN_PROGRESS, COMPLETE, FAILED, UNSUPPORTED_IMAGE
    Column("status", String(32), nullable=False),
    Column("description", String(512), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("completed_at", Timestamp, nullable=True),
    Column("findings_json", Text, nullable=True),
    # What the scan found installed (JSON list), so that a continuous scan can match it
    # against newer advisories without reading the layers again.
    Column("packages_json", Text, nullable=True),
    # The advisories' import time the findings reflect (vulnerabilitySourceUpdatedAt).
    Column("advisories_as_of", Timestamp, nullable=True),
    # The advisories' import time the continuous-scan pass last considered this image at
    # (rematched or, when its repository is not scanned continuously, passed over).
    Column("checked_as_of", Timestamp, nullable=True),
    Index(None, "status", "started_at"),
    Index(None, "status", "checked_as_of"),
)
