"""The domain services of one running ecrd, wired once by create_app."""

from __future__ import annotations

from dataclasses import dataclass

from ecrd.auth.authorizer import Authorizer
from ecrd.auth.tokens import TokenIssuer
from ecrd.blobs.filesystem import FilesystemBlobStore
from ecrd.blobs.store import BlobStore
from ecrd.jobs.background import BackgroundTasks
from ecrd.metadata.account_settings import AccountSettingStore
from ecrd.metadata.blobs import BlobRecords
from ecrd.metadata.creation_templates import CreationTemplateStore
from ecrd.metadata.database import Database
from ecrd.metadata.garbage import GarbageStore
from ecrd.metadata.identities import IdentityStore
from ecrd.metadata.image_scans import ScanStore, VulnerabilityStore
from ecrd.metadata.images import ImageStore
from ecrd.metadata.lifecycle import LifecycleStore
from ecrd.metadata.manifests import ManifestStore
from ecrd.metadata.pull_through_rules import PullThroughRuleStore, PullThroughTagStore
from ecrd.metadata.pull_time_exclusions import PullTimeExclusionStore
from ecrd.metadata.records import Registry
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.replication import ReplicationStore
from ecrd.metadata.replication_backfills import BackfillStore
from ecrd.metadata.repositories import RepositoryStore
from ecrd.metadata.scanning_configurations import ScanningConfigurationStore
from ecrd.metadata.secrets import SecretStore
from ecrd.metadata.signing import SigningProfileStore, SigningStore
from ecrd.metadata.signing_keys import SigningKeyStore
from ecrd.metadata.storage_classes import StorageClassStore
from ecrd.metadata.uploads import UploadStore
from ecrd.registry.account_settings import AccountSettingService
from ecrd.registry.blobs import BlobService
from ecrd.registry.creation_templates import CreationTemplateService
from ecrd.registry.garbage import GarbageCollector
from ecrd.registry.hosts import RegistryHosts
from ecrd.registry.images import ImageService
from ecrd.registry.layers import LayerService
from ecrd.registry.lifecycle import LifecycleService
from ecrd.registry.manifests import ManifestService
from ecrd.registry.pull_through import PullThroughCache
from ecrd.registry.pull_through_rules import PullThroughRuleService
from ecrd.registry.pull_time_exclusions import PullTimeExclusionService
from ecrd.registry.replication import ReplicationService
from ecrd.registry.replication_backfills import BackfillService
from ecrd.registry.repositories import RepositoryService
from ecrd.registry.scanner import ScanService
from ecrd.registry.scanning_configurations import ScanningConfigurationService
from ecrd.registry.secrets import SecretService
from ecrd.registry.signing import SigningService
from ecrd.registry.storage_classes import StorageClassService
from ecrd.registry.uploads import UploadService
from ecrd.sealing import Keyring, load_keyring
from ecrd.settings import Settings


@dataclass(frozen=True)
class RegistryServices:
    database: Database
    # Fire-and-forget writes (pull times), drained at shutdown by the job runner.
    background: BackgroundTasks
    # The store itself, for what asks it directly (the readiness check).
    blob_store: BlobStore
    registries: RegistryStore
    repositories: RepositoryService
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    images: ImageService
    layers: LayerService
    garbage: GarbageCollector
    creation_templates: CreationTemplateService
    hosts: RegistryHosts
    tokens: TokenIssuer
    identities: IdentityStore
    authorizer: Authorizer
    default_account_id: str
    default_region: str
    # Archive and restore of images (UpdateImageStorageClass, lifecycle's transitions).
    storage_classes: StorageClassService
    # Principals whose pulls leave lastRecordedPullTime alone.
    pull_time_exclusions: PullTimeExclusionService
    # Lifecycle policies and their previews (runs: ecrd.registry.lifecycle.apply_policy).
    lifecycle: LifecycleService
    # Secrets Manager secrets, their values sealed with the keyring.
    secrets: SecretService
    # Which namespaces are caches of an upstream registry, and the cache itself.
    pull_through_rules: PullThroughRuleService
    pull_through: PullThroughCache
    # ECR's account settings (registry policy scope, blob mounting, basic scan version).
    account_settings: AccountSettingService
    # Replication rules and the copying of what they cover (the `replication` job).
    replication: ReplicationService
    # Replication of images pushed before the rules (the same job moves them on).
    backfills: BackfillService
    # The registry's scanning configuration (scan type and rules).
    scanning: ScanningConfigurationService
    # Managed signing: configurations, the profiles' keys, and the `signing` job's work.
    signing: SigningService
    # Image scans and the advisories they match against.
    scanner: ScanService

    async def registry_for_host(self, host: str | None) -> Registry:
        """The registry a data-plane request addresses: by its Host when a domain is set."""
        named = self.hosts.registry_named_by(host)
        account_id, region = named or (self.default_account_id, self.default_region)
        return await self.registries.get(account_id, region)

    async def address(self, host: str | None, path_name: str) -> tuple[Registry, str] | None:
        """The registry and repository name a data-plane path names.

        On the public host a path is `<alias>/<name>`. Where public repositories share the
        private host, a path whose first part is a public alias is public (a private name that
        begins with an alias is shadowed by it: give the public registry its own host to keep
        the two apart). None: a public host path whose alias no registry has.
        """
        alias, _, rest = path_name.partition("/")
        if self.hosts.public_host_named_by(host):
            registry = await self._public_registry(alias)
            return None if registry is None or not rest else (registry, rest)
        if rest and self.hosts.public_host_shared:
            registry = await self._public_registry(alias)
            if registry is not None:
                return registry, rest
        return await self.registry_for_host(host), path_name

    async def _public_registry(self, alias: str) -> Registry | None:
        return await self.registries.by_alias(alias)

    async def close(self) -> None:
        await self.pull_through.close()
        await self.replication.close()
        self.blob_store.close()
        await self.database.close()


def blob_store_of(settings: Settings) -> BlobStore:
    """The blob store the settings choose."""
    if settings.blob_store == "s3":
        from ecrd.blobs.s3 import S3BlobStore

        return S3BlobStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url or None,
        )
    return FilesystemBlobStore(settings.data_dir)


def build_services(
    settings: Settings, database: Database | None = None, keyring: Keyring | None = None
) -> RegistryServices:
    database = database or Database(settings.metadata_url)
    # The keys that seal secret values and signing keys (the key file is made when missing).
    keyring = keyring or load_keyring(settings)
    blob_store = blob_store_of(settings)
    blob_records = BlobRecords(database)
    uploads = UploadService(
        UploadStore(database), blob_records, blob_store, settings.max_open_uploads
    )
    background = BackgroundTasks()
    registries = RegistryStore(database, RegistryHosts(settings).default_alias)
    creation_templates = CreationTemplateService(registries, CreationTemplateStore(database))
    pull_time_exclusions = PullTimeExclusionService(PullTimeExclusionStore(database), registries)
    manifests = ManifestService(
        ManifestStore(database), settings.max_manifest_bytes, background, pull_time_exclusions
    )
    repository_store = RepositoryStore(database)
    image_store = ImageStore(database)
    repositories = RepositoryService(
        registries, repository_store, blob_store, settings.create_on_push, creation_templates
    )
    blobs = BlobService(
        blob_records, blob_store, redirect=settings.blob_store == "s3" and settings.s3_redirect
    )
    secrets = SecretService(SecretStore(database, keyring))
    pull_through_rules = PullThroughRuleService(registries, PullThroughRuleStore(database), secrets)
    pull_through = PullThroughCache(
        pull_through_rules,
        repositories,
        manifests,
        blobs,
        uploads,
        PullThroughTagStore(database),
        secrets,
        settings.upstream_endpoints,
        settings.pull_through_refresh_seconds,
    )
    images = ImageService(manifests, image_store)
    identities = IdentityStore(database)
    scans = ScanStore(database)
    scanner = ScanService(
        scans,
        VulnerabilityStore(database),
        manifests,
        blobs,
        ScanningConfigurationStore(database),
        settings.scan_concurrency,
    )
    manifests.on_stored = scanner.scan_if_on_push
    authorizer = Authorizer(registries, repository_store)
    replication_store = ReplicationStore(database)
    replication = ReplicationService(
        registries,
        replication_store,
        repositories,
        manifests,
        images,
        blobs,
        authorizer,
        settings.replication_remotes,
    )
    return RegistryServices(
        database=database,
        background=background,
        blob_store=blob_store,
        registries=registries,
        repositories=repositories,
        blobs=blobs,
        uploads=uploads,
        manifests=manifests,
        images=images,
        layers=LayerService(uploads, blob_records),
        creation_templates=creation_templates,
        garbage=GarbageCollector(
            GarbageStore(database),
            image_store,
            blob_store,
            uploads,
            settings.upload_expiry_seconds,
        ),
        hosts=RegistryHosts(settings),
        tokens=TokenIssuer(SigningKeyStore(database, keyring)),
        identities=identities,
        authorizer=authorizer,
        default_account_id=settings.account_id,
        default_region=settings.region,
        storage_classes=StorageClassService(
            StorageClassStore(database), settings.archive_restore_seconds
        ),
        pull_time_exclusions=pull_time_exclusions,
        lifecycle=LifecycleService(LifecycleStore(database), background),
        secrets=secrets,
        pull_through_rules=pull_through_rules,
        pull_through=pull_through,
        account_settings=AccountSettingService(registries, AccountSettingStore(database)),
        replication=replication,
        backfills=BackfillService(
            registries, BackfillStore(database), replication_store, repository_store
        ),
        scanning=ScanningConfigurationService(
            registries, ScanningConfigurationStore(database), scans
        ),
        signing=SigningService(
            registries,
            SigningStore(database),
            SigningProfileStore(database, keyring),
            repositories,
            manifests,
            uploads,
            identities,
            authorizer,
        ),
        scanner=scanner,
    )
