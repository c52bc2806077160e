"""What a client can send to /v2/ that once answered 500: each gets the spec's 4xx and leaves
nothing behind.

JSON nested 100,000 deep, numbers of thousands of digits or past 64 bits, non-ASCII where
digits belong (`n=²`), non-ASCII in credentials and presigned URLs, an encoded slash in a
name, references that are neither tag nor digest.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import EcrdServer
from tests.oci.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    digest_of,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
    put_manifest,
)

DEEP = 100_000
HUGE_DIGITS = "9" * 5000


def assert_spec_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert error_codes(response) == [code], response.text


def assert_no_repository(server: EcrdServer, name: str) -> None:
    """The refused push created nothing: not even the repository create-on-push makes."""
    found = server.ecr().describe_repositories()["repositories"]
    assert name not in {repository["repositoryName"] for repository in found}


def manifest_with(config_size: Any, layer_size: Any = 1) -> bytes:
    """An OCI image manifest whose sizes are written literally (any JSON number)."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(b"{}"), "size": "@config@"},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(b"x"), "size": "@layer@"}],
    }
    text = json.dumps(document, separators=(",", ":"))
    text = text.replace('"@config@"', str(config_size)).replace('"@layer@"', str(layer_size))
    return text.encode()


# Manifests


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="arrays-100000-deep"),
        pytest.param(b'{"a":' * DEEP + b"1" + b"}" * DEEP, id="objects-100000-deep"),
        pytest.param(
            b'{"schemaVersion":2,"annotations":' + b"[" * 100 + b"]" * 100 + b"}",
            id="a-member-100-deep",
        ),
        pytest.param(manifest_with(HUGE_DIGITS), id="size-of-5000-digits"),
        pytest.param(manifest_with(2**70), id="size-of-2**70"),
        pytest.param(manifest_with(2**62, 2**62), id="sizes-adding-up-past-2**63"),
        pytest.param(manifest_with("1e999999"), id="size-infinite-float"),
        pytest.param(manifest_with("NaN"), id="size-NaN"),
        pytest.param(b'{"schemaVersion":2,"x":"\xff\xfe"}', id="not-utf-8"),
    ],
)
def test_a_hostile_manifest_is_manifest_invalid_and_stores_nothing(
    server: EcrdServer, client: httpx.Client, repository_name: str, payload: bytes
) -> None:
    # given a repository that does not exist yet (a push would create it)
    # when a manifest that no parser should follow is pushed
    response = put_manifest(client, repository_name, "v1", payload)
    # then it is 400 MANIFEST_INVALID and not even the repository was created
    assert_spec_error(response, 400, "MANIFEST_INVALID")
    assert_no_repository(server, repository_name)


def test_sizes_up_to_2_63_minus_1_are_accepted(client: httpx.Client, repository_name: str) -> None:
    # given the blobs a manifest names, with a config size at the largest 64-bit integer
    push_blob(client, repository_name, b"{}")
    push_blob(client, repository_name, b"x")
    payload = manifest_with(2**63 - 2, 1)
    # when it is pushed, then it is stored and read back as sent
    assert put_manifest(client, repository_name, "v1", payload).status_code == 201
    assert client.get(f"/v2/{repository_name}/manifests/v1").content == payload


# Numbers in query parameters and headers


@pytest.mark.parametrize("number", ["²", "١٢", "1e3", "-1", " 5", "0x10", ""])
@pytest.mark.parametrize("path", ["/v2/_catalog", "/v2/{name}/tags/list"])
def test_a_page_size_that_is_not_ascii_digits_is_pagination_number_invalid(
    client: httpx.Client, repository_name: str, number: str, path: str
) -> None:
    # given a repository with a tag
    push_image(client, repository_name, "v1")
    # when a list is asked for with n= that is not a decimal number
    response = client.get(path.format(name=repository_name), params={"n": number})
    # then it is 400 PAGINATION_NUMBER_INVALID (an empty n= means no n at all)
    if number == "":
        assert response.status_code == 200, response.text
    else:
        assert_spec_error(response, 400, "PAGINATION_NUMBER_INVALID")


@pytest.mark.parametrize("number", ["1001", "9" * 19, HUGE_DIGITS])
def test_a_page_size_past_the_limit_is_capped(
    client: httpx.Client, repository_name: str, number: str
) -> None:
    push_image(client, repository_name, "v1")
    response = client.get(f"/v2/{repository_name}/tags/list", params={"n": number})
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["v1"]


@pytest.mark.parametrize(
    "byte_range", ["bytes=0-" + HUGE_DIGITS, "bytes=" + HUGE_DIGITS + "-", "bytes=-" + HUGE_DIGITS]
)
def test_a_range_with_thousands_of_digits_is_served_or_unsatisfiable(
    client: httpx.Client, repository_name: str, byte_range: str
) -> None:
    # given a blob of 10 bytes
    digest = push_blob(client, repository_name, b"0123456789")
    # when it is read with a Range of enormous positions
    response = client.get(f"/v2/{repository_name}/blobs/{digest}", headers={"Range": byte_range})
    # then the range is clamped to the blob (206 of all of it) or unsatisfiable (416)
    if byte_range.startswith("bytes=" + HUGE_DIGITS):
        assert response.status_code == 416, response.text
        assert response.headers["Content-Range"] == "bytes */10"
    else:
        assert response.status_code == 206, response.text
        assert response.content == b"0123456789"


@pytest.mark.parametrize("content_range", ["0-" + HUGE_DIGITS, "²-3", "0-٣"])
def test_a_content_range_that_is_not_ascii_digits_is_refused(
    client: httpx.Client, repository_name: str, content_range: str
) -> None:
    # given an upload in progress
    location = client.post(f"/v2/{repository_name}/blobs/uploads/").headers["Location"]
    # when a chunk names a Content-Range of non-ASCII digits or thousands of them
    response = client.patch(
        location,
        content=b"abcd",
        headers={
            b"Content-Range": content_range.encode(),
            b"Content-Type": b"application/octet-stream",
        },
    )
    # then it is 416 and the upload is still at offset 0
    assert_spec_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert client.get(location).headers["Range"] == "0-0"


# Credentials and presigned URLs


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param("AWS:pässwörd".encode(), id="non-ascii-password"),
        pytest.param("ÄWS:token".encode(), id="non-ascii-user"),
        pytest.param(b"AWS:\xff\xfe", id="password-not-utf-8"),
    ],
)
def test_non_ascii_credentials_are_challenged(
    server: EcrdServer, anonymous: httpx.Client, credentials: bytes
) -> None:
    header = b"Basic " + base64.b64encode(credentials)
    response = anonymous.get("/v2/", headers={b"Authorization": header})
    assert_spec_error(response, 401, "UNAUTHORIZED")


def test_a_non_ascii_authorization_header_is_challenged(anonymous: httpx.Client) -> None:
    response = anonymous.get("/v2/", headers={b"Authorization": "Basic ä".encode("latin-1")})
    assert_spec_error(response, 401, "UNAUTHORIZED")


def presigned_url(server: EcrdServer, repository_name: str, digest: str) -> httpx.URL:
    answer = server.ecr().get_download_url_for_layer(
        repositoryName=repository_name, layerDigest=digest
    )
    return httpx.URL(answer["downloadUrl"])


@pytest.mark.filesystem_blobs  # ecrd's own download URLs; with S3 they are S3's
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"X-Ecrd-Expires": "²"}, id="expiry-superscript-two"),
        pytest.param({"X-Ecrd-Expires": "١٧٠٠٠٠٠٠٠٠"}, id="expiry-arabic-indic-digits"),
        pytest.param({"X-Ecrd-Expires": HUGE_DIGITS}, id="expiry-of-5000-digits"),
        pytest.param({"X-Ecrd-Signature": "sïgnature"}, id="signature-non-ascii"),
        pytest.param({"X-Ecrd-Signature": "\u2028"}, id="signature-line-separator"),
    ],
)
def test_a_tampered_presigned_url_is_refused_not_a_crash(
    server: EcrdServer,
    client: httpx.Client,
    anonymous: httpx.Client,
    repository_name: str,
    tamper: dict[str, str],
) -> None:
    # given a layer and its presigned download URL, which works without credentials
    digest = push_blob(client, repository_name, b"presigned layer")
    url = presigned_url(server, repository_name, digest)
    assert anonymous.get(url).content == b"presigned layer"
    # when one of its parameters is replaced by something that is not what it should be
    tampered = url.copy_merge_params(tamper)
    response = anonymous.get(tampered)
    # then it is an authentication failure (the URL does not count), not a server error
    assert response.status_code == 401, response.text
    assert error_codes(response) == ["UNAUTHORIZED"]


# Names and references


@pytest.mark.parametrize(
    "path",
    [
        "/v2/team%2Fapp/manifests/v1",
        "/v2/team%2fapp/tags/list",
        "/v2/team%2Fapp/blobs/uploads/",
    ],
)
def test_an_encoded_slash_in_a_name_is_name_invalid(
    server: EcrdServer, client: httpx.Client, path: str
) -> None:
    # given nothing in team/app; when a path spells its name with %2F
    method = "POST" if path.endswith("/uploads/") else "GET"
    response = client.request(method, path)
    # then it is a bad name, not the repository team/app, and nothing was created
    assert_spec_error(response, 400, "NAME_INVALID")
    assert_no_repository(server, "team/app")


# Each reference no manifest can have, and what a push under it is: a bad tag, or (it holds a
# colon, so it means a digest) a bad digest.
_IMPOSSIBLE_REFERENCES = {
    "-leading-dash": "TAG_INVALID",
    "a" * 129: "TAG_INVALID",
    "tag!": "TAG_INVALID",
    "bad:tag": "DIGEST_INVALID",
    "sha256:short": "DIGEST_INVALID",
    "sha999:" + "a" * 64: "DIGEST_INVALID",
}


@pytest.mark.parametrize("reference", _IMPOSSIBLE_REFERENCES)
def test_pulling_a_reference_that_is_neither_tag_nor_digest_is_manifest_unknown(
    client: httpx.Client, repository_name: str, reference: str
) -> None:
    # given a repository with an image
    push_image(client, repository_name, "v1")
    # when GET and HEAD name a reference no manifest can have
    got = client.get(f"/v2/{repository_name}/manifests/{reference}")
    headed = client.head(f"/v2/{repository_name}/manifests/{reference}")
    # then both are 404 MANIFEST_UNKNOWN, as the conformance tests expect of any missing one
    assert_spec_error(got, 404, "MANIFEST_UNKNOWN")
    assert headed.status_code == 404
    # and a push under it is still refused as the bad tag or digest it is
    pushed = put_manifest(
        client, repository_name, reference, image_manifest(client, repository_name)
    )
    assert_spec_error(pushed, 400, _IMPOSSIBLE_REFERENCES[reference])


def test_referrers_of_a_repository_never_pushed_to_is_an_empty_index(
    client: httpx.Client, repository_name: str
) -> None:
    response = client.get(f"/v2/{repository_name}/referrers/{digest_of(b'nothing')}")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/vnd.oci.image.index.v1+json")
    assert json.loads(response.content) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }
