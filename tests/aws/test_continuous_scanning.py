"""Continuous scanning: under an ENHANCED configuration's CONTINUOUS_SCAN rule, advisories
imported after an image's scan change its findings without a new StartImageScan (as Amazon
Inspector rescans when new vulnerabilities are published); images of repositories scanned on
push or by hand keep the findings of their scan. vulnerabilitySourceUpdatedAt says which
import the findings reflect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.aws.scanning_helpers import (
    advisory,
    debian_image,
    findings_of,
    import_advisories,
    run_scanning_job,
)
from tests.conftest import EcrdServer
from tests.waiting import eventually

FIRST = [advisory("DSA-1000-1", "Debian:12", "openssl", "3.0.11-1", "HIGH", aliases=["CVE-1"])]
# zlib1g's installed 1:1.2.13.dfsg-1 is before this fix
LATER = [advisory("DSA-2000-1", "Debian:12", "zlib", "1:1.2.14-1", "CRITICAL", aliases=["CVE-2"])]


@pytest.fixture(scope="module")
def continuous_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("continuous") / "data",
        environment={"ECRD_JOB_POLL_SECONDS": "0.5", "ECRD_REPLICATION_INTERVAL_SECONDS": "0.5"},
    )
    instance.start()
    yield instance
    instance.stop()


def scan_times(ecr: Any, repository: str, digest: str) -> tuple[datetime, datetime]:
    findings = ecr.describe_image_scan_findings(
        repositoryName=repository, imageId={"imageDigest": digest}
    )["imageScanFindings"]
    return findings["vulnerabilitySourceUpdatedAt"], findings["imageScanCompletedAt"]


def continuous_rule(*filters: str) -> dict[str, Any]:
    return {
        "scanFrequency": "CONTINUOUS_SCAN",
        "repositoryFilters": [{"filter": text, "filterType": "WILDCARD"} for text in filters],
    }


def test_new_advisories_reach_continuously_scanned_images_only(
    continuous_server: EcrdServer, tmp_path: Path
) -> None:
    ecr = continuous_server.ecr()
    import_advisories(continuous_server, tmp_path, FIRST)
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[continuous_rule("cont/*")])
    ecr.create_repository(repositoryName="cont/app")
    ecr.create_repository(repositoryName="manual/app")
    watched = debian_image(ecr, "cont/app")  # scanned on push: continuous includes that
    manual = debian_image(ecr, "manual/app")
    ecr.start_image_scan(repositoryName="manual/app", imageId={"imageDigest": manual})
    first = [("CVE-1", "libssl3", "3.0.9-1", "HIGH")]
    assert findings_of(ecr, "cont/app", watched) == first
    assert findings_of(ecr, "manual/app", manual) == first
    watched_source, watched_completed = scan_times(ecr, "cont/app", watched)
    manual_before = scan_times(ecr, "manual/app", manual)

    import_advisories(continuous_server, tmp_path, LATER)
    both = sorted([*first, ("CVE-2", "zlib1g", "1:1.2.13.dfsg-1", "CRITICAL")])
    eventually(lambda: findings_of(ecr, "cont/app", watched), lambda found: found == both)
    # a whole pass of the job, so that the manual image has been considered too
    run_scanning_job(continuous_server)
    source, completed = scan_times(ecr, "cont/app", watched)
    assert source > watched_source and completed > watched_completed
    detail = ecr.describe_images(repositoryName="cont/app")["imageDetails"][0]
    summary = detail["imageScanFindingsSummary"]
    assert summary["findingSeverityCounts"] == {"CRITICAL": 1, "HIGH": 1}
    assert summary["vulnerabilitySourceUpdatedAt"] == source
    # the manually scanned image keeps its scan's findings and times
    assert findings_of(ecr, "manual/app", manual) == first
    assert scan_times(ecr, "manual/app", manual) == manual_before

    # a repository a changed configuration makes continuous is matched again too
    ecr.put_registry_scanning_configuration(
        scanType="ENHANCED", rules=[continuous_rule("cont/*", "manual/*")]
    )
    eventually(lambda: findings_of(ecr, "manual/app", manual), lambda found: found == both)
    assert scan_times(ecr, "manual/app", manual)[0] == source
