"""Helpers for the ECR image and layer tests: layers uploaded through the layer API, manifests
built over them, images put with PutImage."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

DEFAULT_CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}'


def digest_of(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


def upload_layer(ecr: Any, repository: str, data: bytes, part_size: int | None = None) -> str:
    """Upload `data` with InitiateLayerUpload, UploadLayerPart(s), CompleteLayerUpload."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    step = part_size or max(len(data), 1)
    for first in range(0, len(data), step):
        part = data[first : first + step]
        ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
    digest = digest_of(data)
    completed = ecr.complete_layer_upload(
        repositoryName=repository, uploadId=upload_id, layerDigests=[digest]
    )
    assert completed["layerDigest"] == digest
    return digest


def ensure_layer(ecr: Any, repository: str, data: bytes) -> str:
    """Upload `data` unless the repository has it already, as docker push does."""
    digest = digest_of(data)
    checked = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest])
    if checked["layers"]:
        return digest
    return upload_layer(ecr, repository, data)


def descriptor(media_type: str, data: bytes | str, **extra: Any) -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    return {"mediaType": media_type, "digest": digest_of(raw), "size": len(raw), **extra}


def encode(document: dict[str, Any]) -> str:
    # Indented on purpose: the server must keep the text exactly, not re-serialise it.
    return json.dumps(document, indent=3)


def image_manifest(
    ecr: Any,
    repository: str,
    layers: list[bytes] | None = None,
    config: bytes = DEFAULT_CONFIG,
    media_type: str = OCI_MANIFEST,
    **extra: Any,
) -> str:
    """Upload a config and layers, and return an image manifest (OCI or Docker v2) over them."""
    layers = [b"layer bytes"] if layers is None else layers
    ensure_layer(ecr, repository, config)
    for layer in layers:
        ensure_layer(ecr, repository, layer)
    config_type, layer_type = (
        (DOCKER_CONFIG, DOCKER_LAYER) if media_type == DOCKER_MANIFEST else (OCI_CONFIG, OCI_LAYER)
    )
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    document["config"] = descriptor(config_type, config)
    document["layers"] = [descriptor(layer_type, layer) for layer in layers]
    document.update(extra)
    return encode(document)


def index_manifest(children: list[str], media_type: str = OCI_INDEX) -> str:
    """An index listing `children` (manifest texts, each carrying its mediaType)."""
    manifests = [
        {**descriptor(json.loads(child)["mediaType"], child), "platform": _platform(number)}
        for number, child in enumerate(children)
    ]
    return encode({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})


def _platform(number: int) -> dict[str, str]:
    return {"architecture": ["amd64", "arm64", "s390x", "ppc64le"][number % 4], "os": "linux"}


def put_image(
    ecr: Any, repository: str, manifest: str, tag: str | None = None, **extra: Any
) -> dict[str, Any]:
    """PutImage, tagged when `tag` is given; return the response's `image`."""
    arguments: dict[str, Any] = {"repositoryName": repository, "imageManifest": manifest, **extra}
    if tag is not None:
        arguments["imageTag"] = tag
    image: dict[str, Any] = ecr.put_image(**arguments)["image"]
    return image


def new_image(ecr: Any, repository: str, seed: str, tag: str | None = None) -> str:
    """Put a distinct one-layer OCI image; return its digest."""
    manifest = image_manifest(ecr, repository, layers=[f"layer of {seed}".encode()])
    put_image(ecr, repository, manifest, tag)
    return digest_of(manifest)
