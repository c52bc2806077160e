"""Image scanning: StartImageScan (and scan on push) start a scan; the `scanning` job reads the
image's layers (each streamed to a temporary file, then read as a tar stream in a worker
thread), inventories what is installed (`scanning.inventory`) and matches it against the
advisories `ecrd vulndb import` loaded (`scanning.osv`, version order per ecosystem from
`scanning.versions`). No network at scan time.

ECR's rules: one basic scan per image per 24 hours (ScanQuotaExceeded), image manifests only
(an index or an artifact with no filesystem layers: ImageTypeUnsupported), not archived
images (ScanOfArchivedImage).

Continuous scanning (an ENHANCED configuration's CONTINUOUS_SCAN rule): when advisories are
imported after an image's scan, the same job matches the packages that scan found against
them again (no layer is read again), so the findings follow the advisories as Amazon
Inspector's do. Each complete scan records the advisories' import time it reflects
(vulnerabilitySourceUpdatedAt).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from ecrd.errors import (
    ImageTypeUnsupported,
    ScanNotFound,
    ScanOfArchivedImage,
    ScanQuotaExceeded,
)
from ecrd.metadata.image_scans import (
    COMPLETE,
    FAILED,
    ImageScan,
    ScanStore,
    StaleScan,
    VulnerabilityStore,
)
from ecrd.metadata.records import Blob, Manifest, Repository, StoredManifest, utcnow
from ecrd.metadata.scanning_configurations import ScanningConfigurationStore
from ecrd.metadata.storage_classes import ACTIVE, status_of
from ecrd.registry.blobs import BlobService
from ecrd.registry.manifests import ManifestService
from ecrd.registry.scanning_configurations import CONTINUOUS_SCAN, resolve
from ecrd.scanning.inventory import Filesystem, Package
from ecrd.scanning.osv import SEVERITIES, is_affected
from ecrd.scanning.versions import comparer

logger = logging.getLogger("ecrd.scanning")

QUOTA_SECONDS = 24 * 3600.0
BATCH = 10
# Rescans are database work only (no layers read): larger batches.
RESCAN_BATCH = 200
IMAGE_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
LAYERS = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
)
_COMPLETE_TEXT = "The scan was completed successfully."


def layers_of(manifest: Manifest) -> list[dict[str, Any]]:
    """The filesystem layers of an image manifest; ImageTypeUnsupported for anything else."""
    if manifest.media_type not in IMAGE_MANIFESTS:
        raise ImageTypeUnsupported(
            f"The operation is not supported for this image type ({manifest.media_type})"
        )
    document = json.loads(manifest.payload)
    layers = [
        layer
        for layer in document.get("layers") or ()
        if isinstance(layer, dict) and layer.get("mediaType") in LAYERS
    ]
    if not layers:
        raise ImageTypeUnsupported("The image has no filesystem layers to scan")
    return layers


def severity_counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    return {name: counts[name] for name in SEVERITIES if name in counts}


class ScanService:
    def __init__(
        self,
        scans: ScanStore,
        advisories: VulnerabilityStore,
        manifests: ManifestService,
        blobs: BlobService,
        configurations: ScanningConfigurationStore,
        concurrency: int = 2,
    ) -> None:
        self._scans = scans
        self.advisories = advisories
        self._manifests = manifests
        self._blobs = blobs
        self._configurations = configurations
        # How many images one process scans at once (each holds a layer's temporary file).
        self._concurrency = max(1, concurrency)
        # Called when a scan starts, so that the job runs soon (set by the app).
        self.on_started: Callable[[], None] | None = None

    async def start(self, repository: Repository, manifest: Manifest) -> ImageScan:
        status = status_of(manifest.image_status, manifest.last_activated_at, utcnow())
        if status != ACTIVE:
            raise ScanOfArchivedImage(
                f"The image {manifest.digest} is archived; restore it to scan it"
            )
        layers_of(manifest)
        started = await self._scans.start(repository.id, manifest.digest, QUOTA_SECONDS)
        if started is None:
            raise ScanQuotaExceeded(
                "The scan quota per image has been exceeded. Wait and try again."
            )
        if self.on_started is not None:
            self.on_started()
        return started

    async def scan_if_on_push(self, repository: Repository, stored: StoredManifest) -> None:
        """Start a scan of a newly pushed image when its repository scans on push (its own
        flag, or the registry's rules, as `scanning_configurations.resolve` decides); images
        the scanner does not read are left alone."""
        if not stored.created or stored.manifest.subject_digest is not None:
            return
        if not repository.scan_on_push:
            configuration = await self._configurations.get(repository.registry_id)
            if configuration is None or not resolve(configuration, repository).on_push:
                return
        with contextlib.suppress(ImageTypeUnsupported, ScanQuotaExceeded, ScanOfArchivedImage):
            await self.start(repository, stored.manifest)

    async def scan_of(self, repository: Repository, digest: str) -> ImageScan:
        found = await self._scans.get(repository.id, digest)
        if found is None:
            raise ScanNotFound(
                f"Image scan does not exist for the image with '{digest}' in the repository "
                f"with name '{repository.name}'"
            )
        return found

    async def of_images(self, repository: Repository, digests: list[str]) -> dict[str, ImageScan]:
        return await self._scans.of_images(repository.id, digests)

    async def run_due(self, deadline_seconds: float) -> dict[str, int]:
        counts = {"scanned": 0, "failed": 0, "rescanned": 0}
        deadline = time.monotonic() + deadline_seconds
        limit = asyncio.Semaphore(self._concurrency)

        async def one(scan: ImageScan) -> None:
            async with limit:
                # Read before matching: advisories imported meanwhile make the scan stale.
                as_of = await self.advisories.updated_at()
                try:
                    packages = await self._inventory(scan)
                    findings = await self.findings_for(packages)
                except Exception as error:  # one image's failure must not stop the others
                    logger.warning("scanning %s failed", scan.digest, exc_info=True)
                    await self._scans.finish(scan, FAILED, f"The scan failed: {error}"[:500], None)
                    counts["failed"] += 1
                    return
                await self._scans.finish(scan, COMPLETE, _COMPLETE_TEXT, findings, packages, as_of)
                counts["scanned"] += 1

        while time.monotonic() < deadline:
            batch = await self._scans.due(BATCH)
            if not batch:
                break
            await asyncio.gather(*(one(scan) for scan in batch))
        counts["rescanned"] = await self._rescan_continuous(deadline)
        return counts

    async def _rescan_continuous(self, deadline: float) -> int:
        """Match the packages of complete scans older than the newest advisories again, in
        repositories scanned continuously; the others are only marked as considered."""
        as_of = await self.advisories.updated_at()
        if as_of is None:
            return 0
        rescanned = 0
        configurations: dict[int, dict[str, Any] | None] = {}
        while time.monotonic() < deadline:
            batch = await self._scans.stale(as_of, RESCAN_BATCH)
            if not batch:
                break
            for stale in batch:
                if stale.registry_id not in configurations:
                    configurations[stale.registry_id] = await self._configurations.get(
                        stale.registry_id
                    )
                if self._is_continuous(configurations[stale.registry_id], stale) and (
                    stale.scan.advisories_as_of is None or stale.scan.advisories_as_of < as_of
                ):
                    findings = await self.findings_for(stale.packages)
                    await self._scans.checked(stale.scan, as_of, findings)
                    rescanned += 1
                else:
                    await self._scans.checked(stale.scan, as_of, None)
        return rescanned

    @staticmethod
    def _is_continuous(configuration: dict[str, Any] | None, stale: StaleScan) -> bool:
        if configuration is None:
            return False
        return resolve(configuration, stale).frequency == CONTINUOUS_SCAN

    async def _inventory(self, scan: ImageScan) -> list[Package]:
        manifest = await self._manifests.find_by_id(scan.repository_id, scan.digest)
        if manifest is None:
            raise ScanNotFound("the image went while it was being scanned")
        filesystem = Filesystem()
        for layer in layers_of(manifest):
            blob = await self._blobs.linked_in(scan.repository_id, str(layer["digest"]))
            if blob is None:
                raise ScanNotFound(f"layer {layer['digest']} is not in the repository")
            await self._apply(filesystem, blob)
        return await anyio.to_thread.run_sync(filesystem.packages)

    async def _apply(self, filesystem: Filesystem, blob: Blob) -> None:
        with tempfile.TemporaryFile(prefix="ecrd-scan-") as spool:
            async for chunk in self._blobs.read(blob, 0, blob.size):
                await anyio.to_thread.run_sync(spool.write, chunk)
            await anyio.to_thread.run_sync(spool.seek, 0)
            await anyio.to_thread.run_sync(filesystem.apply_layer, spool)

    async def findings_for(self, packages: list[Package]) -> list[dict[str, Any]]:
        """Findings for installed packages: one per advisory and package it affects."""
        keys = [(package.ecosystem, package.advisory_name) for package in packages]
        by_key: dict[tuple[str, str], list[Package]] = {}
        for package in packages:
            by_key.setdefault((package.ecosystem, package.advisory_name), []).append(package)
        findings = []
        seen: set[tuple[str, str, str]] = set()
        for match in await self.advisories.for_packages(keys):
            compare = comparer(match.ecosystem)
            if compare is None:
                continue
            for package in by_key.get((match.ecosystem, match.package), ()):
                if not is_affected(package.version, match.affected, compare):
                    continue
                key = (match.id, package.name, package.version)
                if key in seen:
                    continue
                seen.add(key)
                attributes = [
                    {"key": "package_version", "value": package.version},
                    {"key": "package_name", "value": package.name},
                ]
                if match.cvss_vector:
                    attributes.append({"key": "CVSS3_VECTOR", "value": match.cvss_vector})
                findings.append(
                    {
                        "name": match.name,
                        "description": match.summary,
                        "uri": match.uri,
                        "severity": match.severity,
                        "attributes": attributes,
                    }
                )
        order = {name: position for position, name in enumerate(SEVERITIES)}
        findings.sort(key=lambda finding: _finding_order(finding, order))
        return findings


def _finding_order(finding: dict[str, Any], order: dict[str, int]) -> tuple[int, str, str]:
    return (order[finding["severity"]], finding["name"], finding["attributes"][1]["value"])
