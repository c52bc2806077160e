"""Shared pieces for the real-client tests: bounded subprocess calls and registry look-ups."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

COMMAND_TIMEOUT_SECONDS = 30

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])


class CommandFailed(AssertionError):
    """A client command exited non-zero where the test expected success."""


def run_bytes(
    command: list[str],
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[bytes]:
    """Run `command` with a timeout; with `check`, fail with its output when it exits non-zero."""
    result = subprocess.run(
        command,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        stdout = result.stdout.decode(errors="replace")[-3000:]
        stderr = result.stderr.decode(errors="replace")[-3000:]
        raise CommandFailed(
            f"{' '.join(command)} exited {result.returncode}\nstdout: {stdout}\nstderr: {stderr}"
        )
    return result


def run(
    command: list[str],
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """`run_bytes`, with stdout and stderr decoded as UTF-8."""
    result = run_bytes(command, check=check, env=env, timeout=timeout)
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def layout_blob(root: Path, digest: str) -> bytes:
    algorithm, hex_digest = digest.split(":", 1)
    return (root / "blobs" / algorithm / hex_digest).read_bytes()


def layout_blobs(root: Path) -> dict[str, bytes]:
    """Every blob of an OCI image layout, keyed by digest."""
    return {
        f"sha256:{path.name}": path.read_bytes()
        for path in (root / "blobs" / "sha256").iterdir()
        if path.is_file()
    }


def layout_tops(root: Path) -> dict[str, dict[str, Any]]:
    """The tagged descriptors of a layout's index.json, keyed by ref name."""
    index = json.loads((root / "index.json").read_text())
    return {
        entry["annotations"]["org.opencontainers.image.ref.name"]: entry
        for entry in index["manifests"]
    }


def registry_tags(client: httpx.Client, repository: str) -> list[str]:
    """The tags the registry lists for `repository` ([] when it knows none)."""
    response = client.get(f"/v2/{repository}/tags/list")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return list(response.json().get("tags") or [])


def registry_catalog(client: httpx.Client) -> list[str]:
    """Every repository name in /v2/_catalog, following Link pages."""
    names: list[str] = []
    url: str | None = "/v2/_catalog?n=100"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        names.extend(response.json().get("repositories") or [])
        link = response.headers.get("Link")
        url = link.split(";")[0].strip().strip("<>") if link else None
    return names


def manifest_digest(client: httpx.Client, repository: str, reference: str) -> str:
    response = client.head(
        f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert response.status_code == 200, f"HEAD manifest {reference}: {response.status_code}"
    return response.headers["Docker-Content-Digest"]
