"""Building small images with known packages, and reading a scan's findings, for the image
scanning tests."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from tests.aws.images_helpers import descriptor, digest_of, ensure_layer, put_image
from tests.conftest import EcrdServer
from tests.waiting import eventually

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

DEBIAN_STATUS = """\
Package: bash
Status: install ok installed
Version: 5.2.15-2+b2

Package: libssl3
Status: install ok installed
Source: openssl
Version: 3.0.9-1

Package: zlib1g
Status: install ok installed
Source: zlib (1:1.2.13.dfsg-1)
Version: 1:1.2.13.dfsg-1

Package: libold
Status: deinstall ok config-files
Source: openssl
Version: 1.1.1n-0
"""


def advisory(
    identifier: str, ecosystem: str, package: str, fixed: str, level: str, **extra: Any
) -> dict[str, Any]:
    events = [{"introduced": "0"}, {"fixed": fixed}]
    return {
        "id": identifier,
        "summary": f"{package} before {fixed}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
        "database_specific": {"severity": level},
        **extra,
    }  # fmt: skip


def layer(files: Mapping[str, bytes | None], executable: Collection[str] = ()) -> bytes:
    """A gzip tar layer; a None value is a whiteout of that path; `executable` paths get mode
    0755 (others 0644)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for path, data in files.items():
            if data is None:
                folder, _, name = path.rpartition("/")
                path = f"{folder}/.wh.{name}" if folder else f".wh.{name}"
                data = b""
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path in executable else 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_layers(ecr: Any, repository: str, layers: list[bytes], tag: str) -> str:
    """An OCI image of `layers` put through the API; its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": uuid.uuid4().hex})
    descriptors = []
    for data in layers:
        ensure_layer(ecr, repository, data)
        descriptors.append(descriptor(OCI_LAYER, data))
    ensure_layer(ecr, repository, config.encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": descriptors,
        }
    )
    put_image(ecr, repository, manifest, tag)
    return digest_of(manifest)


def findings_of(ecr: Any, repository: str, digest: str) -> list[tuple[str, str, str, str]]:
    waiter = ecr.get_waiter("image_scan_complete")
    waiter.wait(
        repositoryName=repository,
        imageId={"imageDigest": digest},
        WaiterConfig={"Delay": 1, "MaxAttempts": 60},
    )
    answer = ecr.describe_image_scan_findings(
        repositoryName=repository, imageId={"imageDigest": digest}
    )
    assert answer["imageScanStatus"]["status"] == "COMPLETE"
    found = []
    for finding in answer["imageScanFindings"]["findings"]:
        attributes = {item["key"]: item["value"] for item in finding["attributes"]}
        found.append(
            (
                finding["name"],
                attributes["package_name"],
                attributes["package_version"],
                finding["severity"],
            )
        )
    return sorted(found)


def debian_image(ecr: Any, repository: str, tag: str = "v1") -> str:
    site = "usr/lib/python3/dist-packages/../site-packages"
    base = layer(
        {
            "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n',
            "var/lib/dpkg/status": DEBIAN_STATUS.encode(),
            f"{site}/urllib3-1.26.0.dist-info/METADATA": b"Name: urllib3\nVersion: 1.26.0\n",
        }
    )
    top = layer(
        {
            f"{site}/requests-2.25.0.dist-info/METADATA": b"Name: requests\nVersion: 2.25.0\n",
            f"{site}/urllib3-1.26.0.dist-info": None,  # removed in this layer
        }
    )
    return push_layers(ecr, repository, [base, top], tag)


def import_advisories(server: EcrdServer, folder: Path, records: list[dict[str, Any]]) -> None:
    """`ecrd vulndb import` of `records`, written to a new file in `folder`."""
    path = folder / f"advisories-{len(list(folder.iterdir()))}.json"
    path.write_text(json.dumps(records))
    done = server.ecrd_command("vulndb", "import", str(path))
    assert done.returncode == 0, done.stderr


def run_scanning_job(server: EcrdServer) -> None:
    """Run the scanning job to its end with `ecrd jobs run scanning`, once the server's own
    run (which holds the job's lease) lets it: every scan due and every stale one is then
    done."""
    eventually(
        lambda: server.ecrd_command("jobs", "run", "scanning"),
        lambda done: done.returncode == 0,
    )
