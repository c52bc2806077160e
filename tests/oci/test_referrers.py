"""The referrers API: manifests with a subject, and GET /v2/<name>/referrers/<digest>."""

from __future__ import annotations

from typing import Any

import httpx

from tests.oci.helpers import (
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    encode,
    error_codes,
    push_blob,
    push_image,
    put_manifest,
)

SIGNATURE = "application/vnd.example.signature"
SBOM = "application/vnd.example.sbom"


def _push_referrer(
    client: httpx.Client,
    repository: str,
    subject: bytes,
    artifact_type: str,
    content: bytes,
    annotations: dict[str, str] | None = None,
) -> httpx.Response:
    push_blob(client, repository, EMPTY_JSON)
    push_blob(client, repository, content)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor("application/octet-stream", content)],
        "subject": descriptor(OCI_MANIFEST, subject),
    }
    if annotations is not None:
        document["annotations"] = annotations
    payload = encode(document)
    return put_manifest(client, repository, digest_of(payload), payload)


def test_put_with_subject_answers_oci_subject(client: httpx.Client, repository_name: str) -> None:
    # given a pushed image
    subject, subject_digest = push_image(client, repository_name, "v1")
    # when an artifact referring to it is put
    response = _push_referrer(client, repository_name, subject, SIGNATURE, b"sig")
    # then the registry says it processed the subject
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject_digest


def test_referrers_lists_artifacts(client: httpx.Client, repository_name: str) -> None:
    # given an image with a signature and an SBOM referring to it
    subject, subject_digest = push_image(client, repository_name, "v1")
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    signature = _push_referrer(
        client, repository_name, subject, SIGNATURE, b"sig", annotations=annotations
    )
    sbom = _push_referrer(client, repository_name, subject, SBOM, b"sbom")
    # when its referrers are listed
    response = client.get(f"/v2/{repository_name}/referrers/{subject_digest}")
    # then an OCI index lists both, with artifact types and annotations
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response.headers
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in index["manifests"]}
    assert set(by_digest) == {
        signature.headers["Docker-Content-Digest"],
        sbom.headers["Docker-Content-Digest"],
    }
    signed = by_digest[signature.headers["Docker-Content-Digest"]]
    assert signed["mediaType"] == OCI_MANIFEST
    assert signed["artifactType"] == SIGNATURE
    assert signed["annotations"] == annotations
    stored = client.get(f"/v2/{repository_name}/manifests/{signed['digest']}")
    assert signed["size"] == len(stored.content)
    assert by_digest[sbom.headers["Docker-Content-Digest"]]["artifactType"] == SBOM


def test_referrers_filtered_by_artifact_type(client: httpx.Client, repository_name: str) -> None:
    # given an image with a signature and an SBOM referring to it
    subject, subject_digest = push_image(client, repository_name, "v1")
    _push_referrer(client, repository_name, subject, SIGNATURE, b"sig")
    sbom = _push_referrer(client, repository_name, subject, SBOM, b"sbom")
    # when only SBOMs are asked for
    response = client.get(
        f"/v2/{repository_name}/referrers/{subject_digest}", params={"artifactType": SBOM}
    )
    # then only the SBOM is listed, and the filter is reported as applied
    assert response.status_code == 200
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    digests = [entry["digest"] for entry in response.json()["manifests"]]
    assert digests == [sbom.headers["Docker-Content-Digest"]]


def test_artifact_type_falls_back_to_config_media_type(
    client: httpx.Client, repository_name: str
) -> None:
    # given a referrer without artifactType whose config has a custom media type
    subject, subject_digest = push_image(client, repository_name, "v1")
    config = b'{"kind":"attestation"}'
    push_blob(client, repository_name, config)
    payload = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.example.config", config),
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, subject),
        }
    )
    assert put_manifest(client, repository_name, "att", payload).status_code == 201
    # when referrers are listed
    response = client.get(f"/v2/{repository_name}/referrers/{subject_digest}")
    # then its artifactType is the config's media type
    [entry] = response.json()["manifests"]
    assert entry["artifactType"] == "application/vnd.example.config"


def test_referrer_may_be_pushed_before_its_subject(
    client: httpx.Client, repository_name: str
) -> None:
    # given a subject manifest that has not been pushed
    subject = encode({"schemaVersion": 2, "never": "pushed"})
    # when an artifact referring to it is put
    response = _push_referrer(client, repository_name, subject, SIGNATURE, b"sig")
    # then it is accepted and listed under the subject's digest
    assert response.status_code == 201
    listed = client.get(f"/v2/{repository_name}/referrers/{digest_of(subject)}")
    assert [entry["digest"] for entry in listed.json()["manifests"]] == [
        response.headers["Docker-Content-Digest"]
    ]


def test_referrers_of_unknown_digest_is_empty_index(
    client: httpx.Client, repository_name: str
) -> None:
    # given a repository
    push_image(client, repository_name, "v1")
    # when referrers of a digest nothing refers to are asked for
    response = client.get(f"/v2/{repository_name}/referrers/{digest_of(b'nothing')}")
    # then an empty index comes back
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_with_malformed_digest_is_400(client: httpx.Client, repository_name: str) -> None:
    # given a repository
    push_image(client, repository_name, "v1")
    # when referrers of a malformed digest are asked for
    response = client.get(f"/v2/{repository_name}/referrers/sha256:not-a-digest")
    # then it is refused
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_deleted_referrer_is_no_longer_listed(client: httpx.Client, repository_name: str) -> None:
    # given a signature referring to an image
    subject, subject_digest = push_image(client, repository_name, "v1")
    signature = _push_referrer(client, repository_name, subject, SIGNATURE, b"sig")
    # when the signature manifest is deleted
    deleted = client.delete(
        f"/v2/{repository_name}/manifests/{signature.headers['Docker-Content-Digest']}"
    )
    assert deleted.status_code == 202
    # then the referrers list is empty
    response = client.get(f"/v2/{repository_name}/referrers/{subject_digest}")
    assert response.json()["manifests"] == []


def test_index_with_subject_is_a_referrer(client: httpx.Client, repository_name: str) -> None:
    # given an image, and an index whose subject is that image
    subject, subject_digest = push_image(client, repository_name, "v1")
    payload = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/vnd.example.bundle",
            "manifests": [descriptor(OCI_MANIFEST, subject)],
            "subject": descriptor(OCI_MANIFEST, subject),
            "annotations": {"purpose": "bundle"},
        }
    )
    # when the index is put
    response = put_manifest(client, repository_name, "bundle", payload, OCI_INDEX)
    # then the subject is reported and the index is listed as a referrer
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject_digest
    listed = client.get(f"/v2/{repository_name}/referrers/{subject_digest}").json()
    assert listed["manifests"] == [
        {
            "mediaType": OCI_INDEX,
            "digest": digest_of(payload),
            "size": len(payload),
            "artifactType": "application/vnd.example.bundle",
            "annotations": {"purpose": "bundle"},
        }
    ]


def test_filter_matching_nothing_is_empty_and_applied(
    client: httpx.Client, repository_name: str
) -> None:
    # given an image with a signature
    subject, subject_digest = push_image(client, repository_name, "v1")
    _push_referrer(client, repository_name, subject, SIGNATURE, b"sig")
    # when referrers of another artifact type are asked for
    response = client.get(
        f"/v2/{repository_name}/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.none"},
    )
    # then the list is empty and the filter is reported
    assert response.status_code == 200
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert response.json()["manifests"] == []
