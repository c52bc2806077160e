"""Image scanning with real findings: small images built here with known package versions
(Debian's dpkg status, Alpine's apk database, Python dist-info), a small OSV fixture loaded
with `ecrd vulndb import`, and StartImageScan / the image-scan-complete waiter /
DescribeImageScanFindings listing exactly the advisories that apply."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_errors import expect_error
from tests.aws.images_helpers import index_manifest, put_image
from tests.aws.scanning_helpers import advisory, debian_image, findings_of, layer, push_layers
from tests.conftest import (
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
    clean_environment,
)

APK_INSTALLED = """\
P:musl
V:1.2.4-r2
o:musl

P:busybox
V:1.36.1-r15
o:busybox

"""


ADVISORIES = [
    # affects libssl3 3.0.9-1 (source openssl) on Debian 12
    advisory("DSA-0001-1", "Debian:12", "openssl", "3.0.11-1", "HIGH", aliases=["CVE-2023-0001"]),
    # the same source on another release: not this image's
    advisory("DSA-0002-1", "Debian:11", "openssl", "9.9.9-1", "CRITICAL"),
    # fixed exactly at the installed version: not affected
    advisory("DSA-0003-1", "Debian:12", "zlib", "1:1.2.13.dfsg-1", "MEDIUM"),
    # Python package, MODERATE as GitHub writes it
    advisory(
        "GHSA-aaaa-bbbb-cccc",
        "PyPI",
        "requests",
        "2.31.0",
        "MODERATE",
        aliases=["CVE-2023-0003"],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:N/A:N"}],
    ),  # fmt: skip
    # a package the second layer deleted (whiteout): not reported
    advisory("GHSA-dddd-eeee-ffff", "PyPI", "urllib3", "2.0.0", "HIGH"),
    # Alpine: musl r2 < r3 is affected; busybox r15 > r10 is not
    advisory("ALPINE-0001", "Alpine:v3.19", "musl", "1.2.4-r3", "HIGH", aliases=["CVE-2023-0004"]),
    advisory("ALPINE-0002", "Alpine:v3.19", "busybox", "1.36.1-r10", "LOW"),
    # npm: lodash 4.17.20 < 4.17.21 is affected; a scoped package at its fixed version is not
    advisory("GHSA-npm1-npm1-npm1", "npm", "lodash", "4.17.21", "CRITICAL", aliases=["CVE-2021-1"]),
    advisory("GHSA-npm2-npm2-npm2", "npm", "@scope/tool", "2.0.0", "HIGH"),
]


@pytest.fixture(scope="module")
def scanning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    folder = tmp_path_factory.mktemp("scans")
    instance = EcrdServer(folder / "data", environment={"ECRD_JOB_POLL_SECONDS": "0.5"})
    instance.start()
    # the fixture database: one record per file in a folder, and a list in one file
    records = folder / "osv"
    records.mkdir()
    for record in ADVISORIES[:-4]:
        (records / f"{record['id']}.json").write_text(json.dumps(record))
    (records / "alpine-and-npm.json").write_text(json.dumps(ADVISORIES[-4:]))
    (records / "broken.json").write_text("{not json")
    imported = instance.ecrd_command("vulndb", "import", str(records))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == (
        f"loaded {len(ADVISORIES)} advisories; skipped 1 that are not OSV records"
    )
    yield instance
    instance.stop()


def test_a_scan_lists_exactly_the_advisories_that_apply(scanning_server: EcrdServer) -> None:
    ecr = scanning_server.ecr()
    ecr.create_repository(repositoryName="scan/debian")
    digest = debian_image(ecr, "scan/debian")
    started = ecr.start_image_scan(repositoryName="scan/debian", imageId={"imageTag": "v1"})
    assert started["imageScanStatus"]["status"] == "IN_PROGRESS"
    assert started["imageId"] == {"imageDigest": digest, "imageTag": "v1"}
    assert findings_of(ecr, "scan/debian", digest) == [
        ("CVE-2023-0001", "libssl3", "3.0.9-1", "HIGH"),
        ("CVE-2023-0003", "requests", "2.25.0", "MEDIUM"),
    ]
    answer = ecr.describe_image_scan_findings(
        repositoryName="scan/debian", imageId={"imageDigest": digest}
    )
    findings = answer["imageScanFindings"]
    assert findings["findingSeverityCounts"] == {"HIGH": 1, "MEDIUM": 1}
    # the advisories' import time, and the scan's end after it
    imported = findings["vulnerabilitySourceUpdatedAt"]
    assert imported <= findings["imageScanCompletedAt"]
    assert (findings["imageScanCompletedAt"] - imported).total_seconds() < 600
    [requests] = [f for f in findings["findings"] if f["name"] == "CVE-2023-0003"]
    assert {"key": "CVSS3_VECTOR", "value": ADVISORIES[3]["severity"][0]["score"]} in (
        requests["attributes"]
    )
    assert requests["uri"] == "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc"
    # paginated
    first = ecr.describe_image_scan_findings(
        repositoryName="scan/debian", imageId={"imageDigest": digest}, maxResults=1
    )
    assert len(first["imageScanFindings"]["findings"]) == 1
    rest = ecr.describe_image_scan_findings(
        repositoryName="scan/debian",
        imageId={"imageDigest": digest},
        maxResults=1,
        nextToken=first["nextToken"],
    )
    assert len(rest["imageScanFindings"]["findings"]) == 1 and "nextToken" not in rest
    # DescribeImages shows the scan
    detail = ecr.describe_images(repositoryName="scan/debian")["imageDetails"][0]
    assert detail["imageScanStatus"]["status"] == "COMPLETE"
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == {"HIGH": 1, "MEDIUM": 1}
    assert detail["imageScanFindingsSummary"]["vulnerabilitySourceUpdatedAt"] == imported
    # one basic scan per image per day
    expect_error(
        "LimitExceededException",
        ecr.start_image_scan,
        repositoryName="scan/debian",
        imageId={"imageDigest": digest},
    )


def test_an_alpine_image_with_npm_packages_through_the_aws_cli(
    scanning_server: EcrdServer,
) -> None:
    ecr = scanning_server.ecr()
    ecr.create_repository(repositoryName="scan/alpine")
    modules = "usr/lib/node_modules"
    alpine = layer(
        {
            "etc/os-release": b"ID=alpine\nVERSION_ID=3.19.1\n",
            "lib/apk/db/installed": APK_INSTALLED.encode(),
            f"{modules}/lodash/package.json": b'{"name": "lodash", "version": "4.17.20"}',
            f"{modules}/@scope/tool/package.json": b'{"name": "@scope/tool", "version": "2.0.0"}',
        }
    )
    push_layers(ecr, "scan/alpine", [alpine], "v1")
    environment = {
        **clean_environment(),
        "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    aws = [".venv/bin/aws", "ecr", "--endpoint-url", scanning_server.url]
    image = ["--repository-name", "scan/alpine", "--image-id", "imageTag=v1"]
    for command in (["start-image-scan"], ["wait", "image-scan-complete"]):
        done = subprocess.run(
            [*aws, *command, *image], capture_output=True, text=True, timeout=120, env=environment
        )
        assert done.returncode == 0, done.stderr
    described = subprocess.run(
        [*aws, "describe-image-scan-findings", *image],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    answer = json.loads(described.stdout)
    found = sorted(
        (f["name"], {a["key"]: a["value"] for a in f["attributes"]}["package_name"])
        for f in answer["imageScanFindings"]["findings"]
    )
    assert found == [("CVE-2021-1", "lodash"), ("CVE-2023-0004", "musl")]
    assert answer["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 1, "HIGH": 1}


def test_scan_on_push_and_what_cannot_be_scanned(scanning_server: EcrdServer) -> None:
    ecr = scanning_server.ecr()
    ecr.create_repository(
        repositoryName="scan/on-push", imageScanningConfiguration={"scanOnPush": True}
    )
    digest = debian_image(ecr, "scan/on-push")
    # pushed, so scanned without StartImageScan
    assert len(findings_of(ecr, "scan/on-push", digest)) == 2
    # the registry's rules scan on push too, where the repository's own flag is off
    ecr.put_registry_scanning_configuration(
        scanType="BASIC",
        rules=[
            {
                "scanFrequency": "SCAN_ON_PUSH",
                "repositoryFilters": [{"filter": "scan/by-rule*", "filterType": "WILDCARD"}],
            }
        ],
    )
    ecr.create_repository(repositoryName="scan/by-rule")
    by_rule = debian_image(ecr, "scan/by-rule")
    assert len(findings_of(ecr, "scan/by-rule", by_rule)) == 2
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])
    # an image never scanned
    ecr.create_repository(repositoryName="scan/errors")
    plain = debian_image(ecr, "scan/errors")
    expect_error(
        "ScanNotFoundException",
        ecr.describe_image_scan_findings,
        repositoryName="scan/errors",
        imageId={"imageDigest": plain},
    )
    # an index is not an image the scanner reads
    child = ecr.batch_get_image(repositoryName="scan/errors", imageIds=[{"imageDigest": plain}])
    index = index_manifest([child["images"][0]["imageManifest"]])
    put_image(ecr, "scan/errors", index, "multi")
    expect_error(
        "UnsupportedImageTypeException",
        ecr.start_image_scan,
        repositoryName="scan/errors",
        imageId={"imageTag": "multi"},
    )
    expect_error(
        "ImageNotFoundException",
        ecr.start_image_scan,
        repositoryName="scan/errors",
        imageId={"imageTag": "missing"},
    )
    # an archived image is refused until restored
    archived = debian_image(ecr, "scan/errors", "old")
    ecr.update_image_storage_class(
        repositoryName="scan/errors",
        imageId={"imageDigest": archived},
        targetStorageClass="ARCHIVE",
    )
    expect_error(
        "ImageArchivedException",
        ecr.start_image_scan,
        repositoryName="scan/errors",
        imageId={"imageDigest": archived},
    )


def test_the_import_refuses_nothing_silently(scanning_server: EcrdServer, tmp_path: Path) -> None:
    missing = scanning_server.ecrd_command("vulndb", "import", str(tmp_path / "nothing-here"))
    assert missing.returncode != 0
