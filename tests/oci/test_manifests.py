"""PUT, GET, HEAD and DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

import httpx
import pytest

from tests.oci.helpers import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    encode,
    error_codes,
    image_manifest,
    index_of,
    push_blob,
    push_image,
    put_manifest,
)

PLATFORM = {"architecture": "amd64", "os": "linux"}


def test_put_and_get_by_tag(client: httpx.Client, repository_name: str) -> None:
    # given an OCI image manifest whose blobs are pushed
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload)
    # when it is put under a tag
    response = put_manifest(client, repository_name, "v1", payload)
    # then it is created at its digest
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repository_name}/manifests/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    # and GET by tag and by digest return it
    for reference in ("v1", digest):
        fetched = client.get(
            f"/v2/{repository_name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert fetched.status_code == 200
        assert fetched.content == payload
        assert fetched.headers["Content-Type"] == OCI_MANIFEST
        assert fetched.headers["Docker-Content-Digest"] == digest
        assert fetched.headers["Content-Length"] == str(len(payload))


def test_head_manifest(client: httpx.Client, repository_name: str) -> None:
    # given a pushed manifest
    payload, digest = push_image(client, repository_name, "latest")
    # when a HEAD asks for it by tag
    response = client.head(f"/v2/{repository_name}/manifests/latest")
    # then headers describe it and there is no body
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Length"] == str(len(payload))
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert response.content == b""


def test_put_by_digest(client: httpx.Client, repository_name: str) -> None:
    # given a manifest
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload)
    # when it is put by its own digest
    response = put_manifest(client, repository_name, digest, payload)
    # then it is stored untagged
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repository_name}/manifests/{digest}").content == payload
    tags = client.get(f"/v2/{repository_name}/tags/list").json()["tags"]
    assert tags == []


def test_manifest_bytes_are_kept_exactly(client: httpx.Client, repository_name: str) -> None:
    # given a manifest with odd whitespace, key order and fields the registry does not know
    push_blob(client, repository_name, b"cfg")
    push_blob(client, repository_name, b"lyr")
    payload = (
        '{\n\t"schemaVersion" :  2 ,\r\n  "x-unknown": {"nested": [1, 2.50, true]},\n'
        f'   "layers": [ {{"size":3,"digest":"{digest_of(b"lyr")}","mediaType":"{OCI_LAYER}",'
        '"future":"field"} ],\n'
        f'"mediaType":"{OCI_MANIFEST}", "config":{{"mediaType":"application/vnd.oci.image'
        f'.config.v1+json","digest":"{digest_of(b"cfg")}","size":3}}  }}\n\n'
    ).encode()
    # when it is put and read back
    response = put_manifest(client, repository_name, "odd", payload)
    assert response.status_code == 201, response.text
    fetched = client.get(f"/v2/{repository_name}/manifests/odd")
    # then the bytes are identical and the digest is of those bytes
    assert fetched.content == payload
    assert fetched.headers["Docker-Content-Digest"] == digest_of(payload)


def test_docker_schema2_manifest(client: httpx.Client, repository_name: str) -> None:
    # given a Docker v2 schema 2 manifest
    payload = image_manifest(client, repository_name, media_type=DOCKER_MANIFEST)
    # when it is put and fetched
    pushed = put_manifest(client, repository_name, "docker", payload, DOCKER_MANIFEST)
    assert pushed.status_code == 201
    fetched = client.get(
        f"/v2/{repository_name}/manifests/docker", headers={"Accept": DOCKER_MANIFEST}
    )
    # then it comes back with its own media type
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == DOCKER_MANIFEST
    assert fetched.content == payload


def test_docker_manifest_list(client: httpx.Client, repository_name: str) -> None:
    # given a pushed Docker manifest
    child = image_manifest(client, repository_name, media_type=DOCKER_MANIFEST)
    pushed = put_manifest(client, repository_name, digest_of(child), child, DOCKER_MANIFEST)
    assert pushed.status_code == 201
    payload = index_of(
        [descriptor(DOCKER_MANIFEST, child, platform=PLATFORM)], media_type=DOCKER_MANIFEST_LIST
    )
    # when a manifest list naming it is put
    response = put_manifest(client, repository_name, "list", payload, DOCKER_MANIFEST_LIST)
    # then it is stored and served with its media type
    assert response.status_code == 201
    fetched = client.get(f"/v2/{repository_name}/manifests/list")
    assert fetched.headers["Content-Type"] == DOCKER_MANIFEST_LIST
    assert fetched.content == payload


def test_oci_index_and_nested_index(client: httpx.Client, repository_name: str) -> None:
    # given two pushed image manifests
    children = []
    for layer in (b"amd64 layer", b"arm64 layer"):
        child = image_manifest(client, repository_name, layer=layer)
        assert put_manifest(client, repository_name, digest_of(child), child).status_code == 201
        children.append(descriptor(OCI_MANIFEST, child, platform=PLATFORM))
    # when an index of them, and an index of that index, are put
    inner = index_of(children)
    assert put_manifest(client, repository_name, "inner", inner, OCI_INDEX).status_code == 201
    outer = index_of([descriptor(OCI_INDEX, inner)])
    response = put_manifest(client, repository_name, "outer", outer, OCI_INDEX)
    # then both are served as indexes
    assert response.status_code == 201
    for tag, payload in (("inner", inner), ("outer", outer)):
        fetched = client.get(f"/v2/{repository_name}/manifests/{tag}")
        assert fetched.headers["Content-Type"] == OCI_INDEX
        assert fetched.content == payload


def test_artifact_with_empty_config(client: httpx.Client, repository_name: str) -> None:
    # given the empty JSON blob and an artifact layer
    assert push_blob(client, repository_name, EMPTY_JSON) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    push_blob(client, repository_name, b"signature")
    payload = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor("application/vnd.example.sig.v1", b"signature")],
        }
    )
    # when the artifact manifest is put
    response = put_manifest(client, repository_name, "sig", payload)
    # then it is stored like any manifest
    assert response.status_code == 201
    assert client.get(f"/v2/{repository_name}/manifests/sig").content == payload


def test_sha512_manifest_reference(client: httpx.Client, repository_name: str) -> None:
    # given a manifest and its sha512 digest
    payload = image_manifest(client, repository_name)
    digest = digest_of(payload, "sha512")
    # when it is put by that digest
    response = put_manifest(client, repository_name, digest, payload)
    # then it is stored and served under it
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    fetched = client.get(f"/v2/{repository_name}/manifests/{digest}")
    assert fetched.status_code == 200
    assert fetched.content == payload
    assert fetched.headers["Docker-Content-Digest"] == digest


def test_put_by_wrong_digest_is_digest_invalid(client: httpx.Client, repository_name: str) -> None:
    # given a manifest and a digest of something else
    payload = image_manifest(client, repository_name)
    wrong = digest_of(b"something else")
    # when it is put by that digest
    response = put_manifest(client, repository_name, wrong, payload)
    # then it is refused and nothing is stored under either digest
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.head(f"/v2/{repository_name}/manifests/{wrong}").status_code == 404
    assert client.head(f"/v2/{repository_name}/manifests/{digest_of(payload)}").status_code == 404


def test_missing_blob_is_manifest_blob_unknown(client: httpx.Client, repository_name: str) -> None:
    # given a manifest whose layer was never pushed
    push_blob(client, repository_name, b"cfg")
    payload = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"cfg"),
            "layers": [descriptor(OCI_LAYER, b"missing layer")],
        }
    )
    # when it is put
    response = put_manifest(client, repository_name, "broken", payload)
    # then the unknown blob is named
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.json()["errors"][0]["detail"]["digest"] == digest_of(b"missing layer")


def test_index_with_missing_child_is_manifest_blob_unknown(
    client: httpx.Client, repository_name: str
) -> None:
    # given an index naming a manifest that was never pushed
    push_image(client, repository_name, "present")
    payload = index_of([descriptor(OCI_MANIFEST, b'{"not":"pushed"}')])
    # when it is put
    response = put_manifest(client, repository_name, "index", payload, OCI_INDEX)
    # then it is refused
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[1, 2, 3]", OCI_MANIFEST),
        (encode({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "layers": []}), OCI_MANIFEST),
        (encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}), OCI_MANIFEST),
        (
            encode({"schemaVersion": 2, "mediaType": "application/x-unknown", "layers": []}),
            "application/x-unknown",
        ),
        (
            encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"size": 1}]}),
            OCI_INDEX,
        ),
    ],
    ids=["not-json", "not-object", "schema-3", "no-config", "unknown-type", "bad-descriptor"],
)
def test_invalid_manifest_is_manifest_invalid(
    client: httpx.Client, repository_name: str, payload: bytes, content_type: str
) -> None:
    # given a body that is not a valid manifest
    # when it is put
    response = put_manifest(client, repository_name, "bad", payload, content_type)
    # then it is MANIFEST_INVALID
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


def test_manifest_over_4_mib_is_413(client: httpx.Client, repository_name: str) -> None:
    # given a manifest body larger than 4 MiB
    payload = b'{"schemaVersion":2,"padding":"' + b"x" * (4 * 1024 * 1024) + b'"}'
    # when it is put
    response = put_manifest(client, repository_name, "huge", payload)
    # then it is too large
    assert response.status_code == 413


def test_accept_negotiation(client: httpx.Client, repository_name: str) -> None:
    # given an OCI image manifest
    payload, _ = push_image(client, repository_name, "v1")
    url = f"/v2/{repository_name}/manifests/v1"
    # when the Accept header lines list its type among others
    several = [
        ("Accept", f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}"),
        ("Accept", f"{OCI_INDEX};q=0.5"),
        ("Accept", OCI_MANIFEST),
    ]
    listed = client.get(url, headers=httpx.Headers(several))
    # then it is served
    assert listed.status_code == 200
    assert listed.content == payload
    # when the Accept lines name only other manifest types
    others = [("Accept", DOCKER_MANIFEST), ("Accept", f"{OCI_INDEX}, {DOCKER_MANIFEST_LIST}")]
    refused = client.get(url, headers=httpx.Headers(others))
    # then the manifest is unknown to this client
    assert refused.status_code == 404
    assert error_codes(refused) == ["MANIFEST_UNKNOWN"]
    # and with no manifest type named, or */*, it is served
    assert client.get(url, headers={"Accept": "*/*"}).status_code == 200
    assert client.get(url, headers={"Accept": "application/json"}).status_code == 200


def test_unknown_manifest_is_404(client: httpx.Client, repository_name: str) -> None:
    # given a repository with one tag
    push_image(client, repository_name, "present")
    # when another tag and an unknown digest are asked for
    for reference in ("absent", digest_of(b"unknown")):
        response = client.get(f"/v2/{repository_name}/manifests/{reference}")
        # then each is MANIFEST_UNKNOWN
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]


def test_manifest_of_unknown_repository_is_name_unknown(
    client: httpx.Client, repository_name: str
) -> None:
    # given no such repository
    # when a manifest is asked for
    response = client.get(f"/v2/{repository_name}/manifests/latest")
    # then the name is unknown
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_invalid_tag_is_400(client: httpx.Client, repository_name: str) -> None:
    # given a manifest
    payload = image_manifest(client, repository_name)
    # when it is put under a tag that breaks the grammar
    response = put_manifest(client, repository_name, "-bad-start", payload)
    # then the tag is invalid
    assert response.status_code == 400
    assert error_codes(response) == ["TAG_INVALID"]


def test_retag_moves_the_tag(client: httpx.Client, repository_name: str) -> None:
    # given a tag on one manifest
    _, first = push_image(client, repository_name, "moving", layer=b"one")
    # when the tag is put on another manifest
    _, second = push_image(client, repository_name, "moving", layer=b"two")
    # then the tag names the new one and the old one is still reachable by digest
    fetched = client.head(f"/v2/{repository_name}/manifests/moving")
    assert fetched.headers["Docker-Content-Digest"] == second
    assert client.head(f"/v2/{repository_name}/manifests/{first}").status_code == 200


def test_delete_tag_keeps_manifest(client: httpx.Client, repository_name: str) -> None:
    # given a tagged manifest
    _, digest = push_image(client, repository_name, "v1")
    # when the tag is deleted
    response = client.delete(f"/v2/{repository_name}/manifests/v1")
    # then the tag is gone but the manifest is still reachable by digest
    assert response.status_code == 202
    assert client.get(f"/v2/{repository_name}/manifests/v1").status_code == 404
    assert client.get(f"/v2/{repository_name}/manifests/{digest}").status_code == 200


def test_delete_by_digest_removes_tags(client: httpx.Client, repository_name: str) -> None:
    # given a manifest with two tags
    payload, digest = push_image(client, repository_name, "a")
    assert put_manifest(client, repository_name, "b", payload).status_code == 201
    # when it is deleted by digest
    response = client.delete(f"/v2/{repository_name}/manifests/{digest}")
    # then it and its tags are gone
    assert response.status_code == 202
    for reference in (digest, "a", "b"):
        gone = client.get(f"/v2/{repository_name}/manifests/{reference}")
        assert gone.status_code == 404
        assert error_codes(gone) == ["MANIFEST_UNKNOWN"]
    assert client.get(f"/v2/{repository_name}/tags/list").json()["tags"] == []
    again = client.delete(f"/v2/{repository_name}/manifests/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["MANIFEST_UNKNOWN"]


def test_child_of_index_cannot_be_deleted_until_the_index_is(
    client: httpx.Client, repository_name: str
) -> None:
    # given an index over a manifest in the same repository
    child, child_digest = push_image(client, repository_name, "child")
    index = index_of([descriptor(OCI_MANIFEST, child, platform=PLATFORM)])
    assert put_manifest(client, repository_name, "index", index, OCI_INDEX).status_code == 201
    # when the child is deleted
    refused = client.delete(f"/v2/{repository_name}/manifests/{child_digest}")
    # then it is refused while the index lists it
    assert refused.status_code == 409
    assert client.head(f"/v2/{repository_name}/manifests/{child_digest}").status_code == 200
    # and once the index is deleted, the child can be
    assert client.delete(f"/v2/{repository_name}/manifests/{digest_of(index)}").status_code == 202
    assert client.delete(f"/v2/{repository_name}/manifests/{child_digest}").status_code == 202


def test_blob_of_another_repository_does_not_count(
    client: httpx.Client, repository_name: str
) -> None:
    # given a manifest whose blobs were pushed to a different repository
    other = f"{repository_name}-other"
    payload = image_manifest(client, other)
    push_blob(client, repository_name, b"unrelated")
    # when it is put here
    response = put_manifest(client, repository_name, "v1", payload)
    # then its blobs are unknown here
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_nondistributable_layer_need_not_be_pushed(
    client: httpx.Client, repository_name: str
) -> None:
    # given a manifest with a foreign layer that was never uploaded
    push_blob(client, repository_name, b"cfg")
    payload = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"cfg"),
            "layers": [
                descriptor(
                    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    b"foreign",
                    urls=["https://example.com/layer"],
                )
            ],
        }
    )
    # when it is put
    response = put_manifest(client, repository_name, "foreign", payload)
    # then it is accepted
    assert response.status_code == 201


def test_content_type_must_match_media_type(client: httpx.Client, repository_name: str) -> None:
    # given an OCI manifest
    payload = image_manifest(client, repository_name)
    # when it is put claiming to be a Docker manifest
    response = put_manifest(client, repository_name, "v1", payload, DOCKER_MANIFEST)
    # then it is invalid
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


def test_media_type_from_content_type_when_field_absent(
    client: httpx.Client, repository_name: str
) -> None:
    # given an OCI manifest without a mediaType field
    push_blob(client, repository_name, b"cfg")
    payload = encode(
        {
            "schemaVersion": 2,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"cfg"),
            "layers": [],
        }
    )
    # when it is put with its Content-Type
    assert put_manifest(client, repository_name, "v1", payload, OCI_MANIFEST).status_code == 201
    # then it is served with that Content-Type
    fetched = client.get(f"/v2/{repository_name}/manifests/v1")
    assert fetched.headers["Content-Type"] == OCI_MANIFEST


def test_head_with_unacceptable_type_is_404(client: httpx.Client, repository_name: str) -> None:
    # given an OCI image manifest
    push_image(client, repository_name, "v1")
    # when a HEAD accepts only Docker manifests
    response = client.head(
        f"/v2/{repository_name}/manifests/v1", headers={"Accept": DOCKER_MANIFEST}
    )
    # then it is not found, with no body
    assert response.status_code == 404
    assert response.content == b""


def test_putting_same_manifest_twice_is_idempotent(
    client: httpx.Client, repository_name: str
) -> None:
    # given a pushed manifest
    payload, digest = push_image(client, repository_name, "v1")
    # when the same bytes are put again under the same tag
    response = put_manifest(client, repository_name, "v1", payload)
    # then it succeeds with the same digest
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest


def test_delete_manifest_in_unknown_repository(client: httpx.Client, repository_name: str) -> None:
    # given no such repository
    # when a manifest is deleted there
    response = client.delete(f"/v2/{repository_name}/manifests/latest")
    # then the name is unknown
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]
