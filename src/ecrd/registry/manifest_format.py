"""Parsing and validating manifests: Docker v2 schema 2 and 1, manifest lists, OCI manifests,
indexes and artifacts. The bytes are kept exactly as sent; parsing only extracts what the
registry must know (references, subject, artifact type, size).
"""

from __future__ import annotations

import json
from typing import Any

from ecrd.bounded_parsing import MAX_INTEGER, InputInvalid, parse_json
from ecrd.digests import Digest
from ecrd.errors import DigestInvalid, ManifestInvalid, MediaTypeMissing
from ecrd.metadata.records import NewManifest
from ecrd.registry import media_types as types


def parse_manifest(
    payload: bytes, content_type: str | None, algorithm: str, infer_media_type: bool = True
) -> NewManifest:
    """Validate `payload` and describe it; raise ManifestInvalid when it is not a manifest.

    A schema 2 manifest that names no media type, sent with none, is typed by its shape (the
    OCI spec lets `mediaType` be left out) unless `infer_media_type` is off: then it is
    MediaTypeMissing (ECR's PutImage wants the type named)."""
    try:
        document = parse_json(payload)
    except InputInvalid as error:
        raise ManifestInvalid(f"manifest: {error}") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = _media_type(document, content_type, infer_media_type)
    digest = str(Digest.of(payload, algorithm))
    if media_type in types.SCHEMA1:
        return _schema1(document, media_type, digest, payload)
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    subject = _optional_descriptor(document, "subject")
    annotations = _annotations(document)
    artifact_type = _optional_string(document, "artifactType")
    blob_digests: set[str] = set()
    child_digests: set[str] = set()
    config_media_type: str | None = None
    if media_type in types.INDEXES:
        children = _descriptor_list(document, "manifests", required=True)
        child_digests = {child["digest"] for child in children}
        size = 0  # the store sets it: the largest child image's size, as ECR reports
    else:
        if media_type == types.OCI_ARTIFACT_MANIFEST:
            layers = _descriptor_list(document, "blobs", required=False)
        else:
            config = _descriptor(document.get("config"), "config")
            config_media_type = config["mediaType"]
            blob_digests.add(config["digest"])
            layers = _descriptor_list(document, "layers", required=True)
            if artifact_type is None:
                artifact_type = config_media_type
        blob_digests.update(
            layer["digest"]
            for layer in layers
            if not layer["mediaType"].startswith(types.EXTERNAL_LAYER_PREFIXES)
        )
        size = sum(layer["size"] for layer in layers)
        if config_media_type is not None:
            size += document["config"]["size"]
        if size > MAX_INTEGER:
            raise ManifestInvalid("the sizes of the config and layers add up past 2**63 - 1")
    return NewManifest(
        digest=digest,
        media_type=media_type,
        payload=payload,
        size=size,
        artifact_type=artifact_type,
        config_media_type=config_media_type,
        subject_digest=None if subject is None else subject["digest"],
        annotations_json=None if annotations is None else json.dumps(annotations),
        blob_digests=frozenset(blob_digests),
        child_digests=frozenset(child_digests),
    )


def _media_type(document: dict[str, Any], content_type: str | None, infer: bool) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower() or None
    if header in (None, "application/json", "application/octet-stream"):
        header = None
    if declared is not None and header is not None and declared != header:
        raise ManifestInvalid(f"mediaType {declared!r} does not match Content-Type {header!r}")
    media_type = declared or header
    if media_type is None:
        # OCI lets mediaType be left out; the shape tells an index from a manifest. Schema 1
        # never has one: its schemaVersion says what it is.
        if document.get("schemaVersion") == 1:
            media_type = types.DOCKER_SCHEMA1_SIGNED
        elif not infer:
            raise MediaTypeMissing("the manifest names no mediaType and none was given")
        elif "manifests" in document:
            media_type = types.OCI_INDEX
        elif "config" in document:
            media_type = types.OCI_MANIFEST
        else:
            raise ManifestInvalid("cannot tell the manifest's media type")
    if media_type not in types.ALL_MANIFESTS:
        raise ManifestInvalid(f"unsupported manifest media type {media_type[:200]!r}")
    return media_type


def _schema1(document: dict[str, Any], media_type: str, digest: str, payload: bytes) -> NewManifest:
    if document.get("schemaVersion") != 1:
        raise ManifestInvalid("schemaVersion must be 1")
    layers = document.get("fsLayers")
    if not isinstance(layers, list) or not layers:
        raise ManifestInvalid("fsLayers must be a non-empty list")
    blob_digests = set()
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("blobSum"), str):
            raise ManifestInvalid("each fsLayers entry needs a blobSum")
        blob_digests.add(_digest(layer["blobSum"], "fsLayers.blobSum"))
    return NewManifest(
        digest=digest,
        media_type=media_type,
        payload=payload,
        size=0,
        artifact_type=None,
        config_media_type=None,
        subject_digest=None,
        annotations_json=None,
        blob_digests=frozenset(blob_digests),
        child_digests=frozenset(),
    )


def _digest(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestInvalid(f"{where} must be a digest string")
    try:
        return str(Digest.parse(value))
    except DigestInvalid:
        raise ManifestInvalid(f"{where} is not a valid digest: {value[:200]!r}") from None


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    if not isinstance(value.get("mediaType"), str) or not value["mediaType"]:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    _digest(value.get("digest"), f"{where}.digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    return value


def _optional_descriptor(document: dict[str, Any], key: str) -> dict[str, Any] | None:
    return None if document.get(key) is None else _descriptor(document[key], key)


def _descriptor_list(document: dict[str, Any], key: str, required: bool) -> list[dict[str, Any]]:
    value = document.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return [_descriptor(item, f"{key}[{index}]") for index, item in enumerate(value)]


def _optional_string(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value


def _annotations(document: dict[str, Any]) -> dict[str, str] | None:
    value = document.get("annotations")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    return value
