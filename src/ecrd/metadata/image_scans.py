"""Vulnerability advisories (loaded by `ecrd vulndb import`) and image scans (one row per image:
its status and, once complete, its findings, the packages they were matched from and the
advisories' import time they reflect)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, tuple_, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, as_utc_or_none, utcnow
from ecrd.metadata.schema import (
    image_scans,
    repositories,
    vulnerabilities,
    vulnerability_packages,
)
from ecrd.metadata.statements import upsert
from ecrd.scanning.inventory import Package
from ecrd.scanning.osv import Advisory

IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
# Packages asked for at a time (parameters per statement stay well within SQLite's bound).
LOOKUP_CHUNK = 200


@dataclass(frozen=True)
class AdvisoryMatch:
    id: str
    name: str
    summary: str
    uri: str
    severity: str
    cvss_vector: str | None
    ecosystem: str
    package: str
    affected: dict[str, Any]


@dataclass(frozen=True)
class ImageScan:
    repository_id: int
    digest: str
    status: str
    description: str
    started_at: datetime
    completed_at: datetime | None
    findings: list[dict[str, Any]] | None
    # When the advisories the findings were matched against were imported.
    advisories_as_of: datetime | None = None


@dataclass(frozen=True)
class StaleScan:
    """A complete scan older than the newest advisories, with what decides whether its
    repository is scanned continuously."""

    scan: ImageScan
    registry_id: int
    name: str
    scan_on_push: bool
    packages: list[Package]


def _scan(row: Any) -> ImageScan:
    return ImageScan(
        repository_id=row.repository_id,
        digest=row.digest,
        status=row.status,
        description=row.description,
        started_at=as_utc(row.started_at),
        completed_at=as_utc_or_none(row.completed_at),
        findings=None if row.findings_json is None else json.loads(row.findings_json),
        advisories_as_of=as_utc_or_none(row.advisories_as_of),
    )


def _packages(text: str) -> list[Package]:
    return [Package(*entry) for entry in json.loads(text)]


class VulnerabilityStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def put_many(
        self, advisories: Sequence[Advisory], imported_at: datetime | None = None
    ) -> None:
        """Store advisories, each replacing an earlier one of the same id, in one transaction,
        as imported at `imported_at` (now when not given)."""
        dialect = self._database.dialect
        imported_at = imported_at or utcnow()

        def work(connection: Connection) -> None:
            for advisory in advisories:
                connection.execute(
                    upsert(
                        dialect,
                        vulnerabilities,
                        ["id"],
                        id=advisory.id,
                        name=advisory.name,
                        summary=advisory.summary,
                        uri=advisory.uri,
                        severity=advisory.severity,
                        cvss_vector=advisory.cvss_vector,
                        imported_at=imported_at,
                    )
                )
                connection.execute(
                    delete(vulnerability_packages).where(
                        vulnerability_packages.c.vulnerability_id == advisory.id
                    )
                )
                rows = {
                    (ecosystem, package): {
                        "vulnerability_id": advisory.id,
                        "ecosystem": ecosystem,
                        "package": package,
                        "affected_json": json.dumps(affected),
                    }
                    for ecosystem, package, affected in advisory.affected
                }
                if rows:
                    connection.execute(insert(vulnerability_packages), list(rows.values()))

        await self._database.write(work)

    async def updated_at(self) -> datetime | None:
        """When advisories were last imported; None before the first import."""
        query = select(func.max(vulnerabilities.c.imported_at))
        value = await self._database.read(lambda connection: connection.execute(query).scalar())
        return as_utc_or_none(value)

    async def for_packages(self, keys: Sequence[tuple[str, str]]) -> list[AdvisoryMatch]:
        """The advisories naming any of (ecosystem, package) `keys`."""
        found: list[AdvisoryMatch] = []
        unique = sorted(set(keys))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            chunk = unique[start : start + LOOKUP_CHUNK]
            query = (
                select(
                    vulnerabilities.c.id,
                    vulnerabilities.c.name,
                    vulnerabilities.c.summary,
                    vulnerabilities.c.uri,
                    vulnerabilities.c.severity,
                    vulnerabilities.c.cvss_vector,
                    vulnerability_packages.c.ecosystem,
                    vulnerability_packages.c.package,
                    vulnerability_packages.c.affected_json,
                )
                .select_from(
                    vulnerability_packages.join(
                        vulnerabilities,
                        vulnerabilities.c.id == vulnerability_packages.c.vulnerability_id,
                    )
                )
                .where(
                    tuple_(vulnerability_packages.c.ecosystem, vulnerability_packages.c.package)
                    .in_(chunk)
                )
            )  # fmt: skip
            rows = await self._database.read(
                lambda connection, q=query: list(connection.execute(q))  # type: ignore[misc]
            )
            for row in rows:
                found.append(
                    AdvisoryMatch(
                        id=row[0], name=row[1], summary=row[2], uri=row[3], severity=row[4],
                        cvss_vector=row[5], ecosystem=row[6], package=row[7],
                        affected=json.loads(row[8]),
                    )
                )  # fmt: skip
        return found


class ScanStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, repository_id: int, digest: str) -> ImageScan | None:
        query = select(image_scans).where(
            (image_scans.c.repository_id == repository_id) & (image_scans.c.digest == digest)
        )
        row = await self._database.read(lambda connection: connection.execute(query).first())
        return None if row is None else _scan(row)

    async def of_images(self, repository_id: int, digests: Sequence[str]) -> dict[str, ImageScan]:
        if not digests:
            return {}
        query = select(image_scans).where(
            (image_scans.c.repository_id == repository_id) & image_scans.c.digest.in_(list(digests))
        )
        rows = await self._database.read(lambda connection: list(connection.execute(query)))
        return {row.digest: _scan(row) for row in rows}

    async def start(
        self, repository_id: int, digest: str, quota_seconds: float
    ) -> ImageScan | None:
        """Start a scan (IN_PROGRESS); None when the image was scanned, or a scan of it began,
        less than `quota_seconds` ago (ECR's one basic scan per image per 24 hours)."""
        now = utcnow()
        mine = (image_scans.c.repository_id == repository_id) & (image_scans.c.digest == digest)

        def work(connection: Connection) -> ImageScan | None:
            row = connection.execute(select(image_scans).where(mine).with_for_update()).first()
            if row is not None:
                if (now - as_utc(row.started_at)).total_seconds() < quota_seconds:
                    return None
                connection.execute(delete(image_scans).where(mine))
            connection.execute(
                insert(image_scans).values(
                    repository_id=repository_id,
                    digest=digest,
                    status=IN_PROGRESS,
                    description="The scan is in progress.",
                    started_at=now,
                )
            )
            return _scan(connection.execute(select(image_scans).where(mine)).one())

        return await self._database.write(work)

    async def due(self, limit: int) -> list[ImageScan]:
        query = (
            select(image_scans)
            .where(image_scans.c.status == IN_PROGRESS)
            .order_by(image_scans.c.started_at)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [_scan(row) for row in connection.execute(query)]
        )

    async def finish(
        self,
        scan: ImageScan,
        status: str,
        description: str,
        findings: list[dict[str, Any]] | None,
        packages: Sequence[Package] = (),
        advisories_as_of: datetime | None = None,
    ) -> None:
        """Record how a scan ended; a complete one keeps its packages, for continuous scans."""
        complete = findings is not None
        statement = (
            update(image_scans)
            .where(_this_scan(scan))
            .values(
                status=status,
                description=description[:500],
                completed_at=utcnow(),
                findings_json=json.dumps(findings) if complete else None,
                packages_json=json.dumps([astuple(package) for package in packages])
                if complete
                else None,
                advisories_as_of=advisories_as_of,
                checked_as_of=advisories_as_of,
            )
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def stale(self, as_of: datetime, limit: int) -> list[StaleScan]:
        """Complete scans the continuous-scan pass has not yet considered against the
        advisories imported at `as_of` (an indexed range on status and checked_as_of)."""
        query = (
            select(
                image_scans,
                repositories.c.registry_id,
                repositories.c.name,
                repositories.c.scan_on_push,
            )
            .select_from(
                image_scans.join(repositories, repositories.c.id == image_scans.c.repository_id)
            )
            .where(
                (image_scans.c.status == COMPLETE)
                & image_scans.c.packages_json.is_not(None)
                & or_(image_scans.c.checked_as_of.is_(None), image_scans.c.checked_as_of < as_of)
            )
            .limit(limit)
        )
        rows = await self._database.read(lambda connection: list(connection.execute(query)))
        return [
            StaleScan(
                _scan(row),
                row.registry_id,
                row.name,
                row.scan_on_push,
                _packages(row.packages_json),
            )  # fmt: skip
            for row in rows
        ]

    async def checked(
        self, scan: ImageScan, as_of: datetime, findings: list[dict[str, Any]] | None
    ) -> None:
        """Record that the continuous-scan pass considered `scan` against the advisories of
        `as_of`: with new `findings` when it matched them again, else only passed it over."""
        values: dict[str, Any] = {"checked_as_of": as_of}
        if findings is not None:
            values.update(
                findings_json=json.dumps(findings), advisories_as_of=as_of, completed_at=utcnow()
            )
        statement = update(image_scans).where(_this_scan(scan)).values(**values)
        await self._database.write(lambda connection: connection.execute(statement))

    async def check_again(self, registry_id: int) -> None:
        """Have the continuous-scan pass consider every scan of the registry again (its
        scanning configuration changed: repositories may now be scanned continuously)."""
        in_registry = select(repositories.c.id).where(repositories.c.registry_id == registry_id)
        statement = (
            update(image_scans)
            .where(image_scans.c.repository_id.in_(in_registry))
            .values(checked_as_of=None)
        )
        await self._database.write(lambda connection: connection.execute(statement))


def _this_scan(scan: ImageScan) -> Any:
    # The started-at time tells this scan from a later one of the same image.
    return (
        (image_scans.c.repository_id == scan.repository_id)
        & (image_scans.c.digest == scan.digest)
        & (image_scans.c.started_at == scan.started_at)
    )
