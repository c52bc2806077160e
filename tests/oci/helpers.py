"""Small helpers for the OCI protocol tests: digests, blob uploads, manifests, descriptors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EMPTY_JSON = b"{}"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def error_codes(response: httpx.Response) -> list[str]:
    """The spec error codes of a response's {"errors": [...]} envelope."""
    body = response.json()
    errors = body["errors"]
    for error in errors:
        assert set(error) >= {"code", "message"}
    return [error["code"] for error in errors]


def push_blob(client: httpx.Client, repository: str, data: bytes, algorithm: str = "sha256") -> str:
    """Upload `data` in one monolithic POST and return its digest."""
    digest = digest_of(data, algorithm)
    response = client.post(
        f"/v2/{repository}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def start_upload(client: httpx.Client, repository: str) -> str:
    """POST a new upload session and return its Location."""
    response = client.post(f"/v2/{repository}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def put_manifest(
    client: httpx.Client,
    repository: str,
    reference: str,
    payload: bytes,
    media_type: str = OCI_MANIFEST,
) -> httpx.Response:
    return client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=payload,
        headers={"Content-Type": media_type},
    )


def image_manifest(
    client: httpx.Client,
    repository: str,
    layer: bytes = b"layer bytes",
    config: bytes = b'{"architecture":"amd64","os":"linux"}',
    media_type: str = OCI_MANIFEST,
    **extra: Any,
) -> bytes:
    """Upload a config and one layer, and return the bytes of an image manifest using them."""
    push_blob(client, repository, config)
    push_blob(client, repository, layer)
    config_type, layer_type = (
        (DOCKER_CONFIG, DOCKER_LAYER) if media_type == DOCKER_MANIFEST else (OCI_CONFIG, OCI_LAYER)
    )
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, layer)],
        **extra,
    }
    return encode(document)


def push_image(
    client: httpx.Client, repository: str, reference: str, layer: bytes = b"layer bytes"
) -> tuple[bytes, str]:
    """Push an OCI image manifest under `reference`; return its bytes and digest."""
    payload = image_manifest(client, repository, layer=layer)
    response = put_manifest(client, repository, reference, payload)
    assert response.status_code == 201, response.text
    return payload, digest_of(payload)


def index_of(children: list[dict[str, Any]], media_type: str = OCI_INDEX) -> bytes:
    return encode({"schemaVersion": 2, "mediaType": media_type, "manifests": children})
