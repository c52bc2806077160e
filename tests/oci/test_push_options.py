"""Manifest pushes the Distribution Spec allows beyond the basics: tags given as `?tag=` on a
push by digest (spec 1.2 draft), sha512 digests kept in every reply, and (with
`strict_references = false`) manifests whose blobs the repository lacks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import EcrdServer
from tests.oci.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    encode,
    error_codes,
    image_manifest,
    put_manifest,
)


def test_a_push_by_digest_applies_each_tag_parameter_and_says_so(
    client: httpx.Client, repository_name: str
) -> None:
    # given an image manifest
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload)
    # when it is pushed by digest with three tag parameters (one repeated)
    response = client.put(
        f"/v2/{repository_name}/manifests/{digest}",
        params=[("tag", "v1"), ("tag", "latest"), ("tag", "v1"), ("tag", "stable")],
        content=payload,
        headers={"Content-Type": OCI_MANIFEST},
    )
    # then each tag is applied and named back in an OCI-Tag header
    assert response.status_code == 201, response.text
    assert response.headers.get_list("OCI-Tag") == ["v1", "latest", "stable"]
    assert response.headers["Docker-Content-Digest"] == digest
    tags = client.get(f"/v2/{repository_name}/tags/list").json()["tags"]
    assert tags == ["latest", "stable", "v1"]
    for tag in tags:
        pulled = client.get(f"/v2/{repository_name}/manifests/{tag}")
        assert pulled.headers["Docker-Content-Digest"] == digest


def test_a_bad_tag_parameter_refuses_the_whole_push(
    client: httpx.Client, repository_name: str
) -> None:
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload)
    response = client.put(
        f"/v2/{repository_name}/manifests/{digest}",
        params=[("tag", "good"), ("tag", "bad:tag")],
        content=payload,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["TAG_INVALID"]
    assert client.get(f"/v2/{repository_name}/manifests/{digest}").status_code == 404
    assert client.get(f"/v2/{repository_name}/manifests/good").status_code == 404


def test_a_manifest_pushed_by_sha512_keeps_that_digest_in_every_reply(
    client: httpx.Client, repository_name: str
) -> None:
    # given an image manifest, addressed by its sha512 digest
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload, "sha512")
    # when it is pushed by that digest with a tag
    pushed = client.put(
        f"/v2/{repository_name}/manifests/{digest}",
        params={"tag": "v512"},
        content=payload,
        headers={"Content-Type": OCI_MANIFEST},
    )
    # then the push, the pull by digest and by tag, and HEAD all say the sha512 digest
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Docker-Content-Digest"] == digest
    assert pushed.headers["Location"].endswith(f"/manifests/{digest}")
    for reference in (digest, "v512"):
        got = client.get(f"/v2/{repository_name}/manifests/{reference}")
        assert got.status_code == 200, got.text
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.content == payload
        head = client.head(f"/v2/{repository_name}/manifests/{reference}")
        assert head.headers["Docker-Content-Digest"] == digest


@pytest.fixture(scope="module")
def lenient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("lenient") / "data",
        environment={"ECRD_STRICT_REFERENCES": "false"},
    )
    instance.start()
    yield instance
    instance.stop()


def sparse_manifest() -> bytes:
    """An image manifest naming a config and a layer that were never uploaded."""
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, b'{"never":"uploaded"}'),
            "layers": [descriptor(OCI_LAYER, b"a layer nobody pushed")],
        }
    )


def test_strict_references_off_lets_v2_store_a_sparse_manifest(
    lenient_server: EcrdServer, server: EcrdServer
) -> None:
    payload = sparse_manifest()
    # given the default (strict) server: the push is refused for the missing blobs
    with server.http() as strict:
        refused = put_manifest(strict, "sparse/strict", "v1", payload)
        assert refused.status_code == 400
        assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    # when strict_references is off, then /v2/ stores it as sent
    with lenient_server.http() as lenient:
        stored = put_manifest(lenient, "sparse/lenient", "v1", payload)
        assert stored.status_code == 201, stored.text
        assert lenient.get("/v2/sparse/lenient/manifests/v1").content == payload
