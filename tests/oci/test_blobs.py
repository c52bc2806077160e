"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>, byte ranges and error codes."""

from __future__ import annotations

import httpx
import pytest

from tests.oci.helpers import digest_of, error_codes, push_blob

DATA = bytes(range(256)) * 4  # 1024 bytes


def test_get_blob_returns_bytes_and_digest(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when it is fetched
    response = client.get(f"/v2/{repository_name}/blobs/{digest}")
    # then the bytes, length and digest come back
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == digest


def test_head_blob_returns_headers_without_body(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when a client checks it exists
    response = client.head(f"/v2/{repository_name}/blobs/{digest}")
    # then it answers 200 with its length and digest and no body
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.content == b""


def test_range_request_returns_206_with_content_range(
    client: httpx.Client, repository_name: str
) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when a byte range of it is asked for
    response = client.get(f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    # then only those bytes come back, described by Content-Range
    assert response.status_code == 206
    assert response.content == DATA[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
    assert response.headers["Content-Length"] == "10"


def test_open_ended_range_runs_to_the_end(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when a range with no end is asked for
    response = client.get(f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=1000-"})
    # then the rest of the blob comes back
    assert response.status_code == 206
    assert response.content == DATA[1000:]
    assert response.headers["Content-Range"] == f"bytes 1000-1023/{len(DATA)}"


def test_suffix_range_returns_the_last_bytes(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when the last 100 bytes are asked for
    response = client.get(f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=-100"})
    # then exactly those come back
    assert response.status_code == 206
    assert response.content == DATA[-100:]
    assert response.headers["Content-Range"] == f"bytes 924-1023/{len(DATA)}"


def test_range_past_the_end_is_416_with_size(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob of 1024 bytes
    digest = push_blob(client, repository_name, DATA)
    # when a range starting beyond it is asked for
    response = client.get(
        f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=5000-6000"}
    )
    # then the range is unsatisfiable and the size is reported
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_unknown_blob_is_404_blob_unknown(client: httpx.Client, repository_name: str) -> None:
    # given a repository without the blob
    push_blob(client, repository_name, DATA)
    missing = digest_of(b"never pushed")
    # when it is fetched
    response = client.get(f"/v2/{repository_name}/blobs/{missing}")
    # then the spec's BLOB_UNKNOWN error comes back
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_head_unknown_blob_is_404_without_body(client: httpx.Client, repository_name: str) -> None:
    # given a repository without the blob
    push_blob(client, repository_name, DATA)
    # when a HEAD asks for it
    response = client.head(f"/v2/{repository_name}/blobs/{digest_of(b'nothing')}")
    # then it is 404 with no body
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "G" * 64, "md5:" + "a" * 32, "sha256:" + "A" * 64],
)
def test_malformed_digest_is_400_digest_invalid(
    client: httpx.Client, repository_name: str, digest: str
) -> None:
    # given an existing repository
    push_blob(client, repository_name, DATA)
    # when a blob is asked for by a malformed digest
    response = client.get(f"/v2/{repository_name}/blobs/{digest}")
    # then it is DIGEST_INVALID
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_blob_of_unknown_repository_is_404_name_unknown(
    client: httpx.Client, repository_name: str
) -> None:
    # given a repository nobody pushed to
    # when a blob is asked for there
    response = client.get(f"/v2/{repository_name}/blobs/{digest_of(DATA)}")
    # then the repository is unknown
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.parametrize("name", ["Upper/case", "bad..dots", "trailing-/x", "a//b"])
def test_invalid_repository_name_is_400_name_invalid(client: httpx.Client, name: str) -> None:
    # given a name that breaks the spec's grammar
    # when a blob is asked for under it
    response = client.get(f"/v2/{name}/blobs/{digest_of(DATA)}")
    # then the name is invalid
    assert response.status_code == 400
    assert error_codes(response) == ["NAME_INVALID"]


def test_upload_to_invalid_name_is_400_name_invalid(client: httpx.Client) -> None:
    # given an upper-case repository name
    # when an upload is started there
    response = client.post("/v2/Invalid/Name/blobs/uploads/")
    # then the name is refused
    assert response.status_code == 400
    assert error_codes(response) == ["NAME_INVALID"]


def test_nested_repository_names_work(client: httpx.Client, repository_name: str) -> None:
    # given a repository name with several path components
    nested = f"{repository_name}/b/c"
    # when a blob is pushed and fetched there
    digest = push_blob(client, nested, DATA)
    response = client.get(f"/v2/{nested}/blobs/{digest}")
    # then it is served, and the parent name is a different repository
    assert response.status_code == 200
    assert response.content == DATA
    parent = client.get(f"/v2/{repository_name}/blobs/{digest}")
    assert parent.status_code == 404


def test_delete_blob_unlinks_it(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when it is deleted
    response = client.delete(f"/v2/{repository_name}/blobs/{digest}")
    # then the delete is accepted and the blob is gone
    assert response.status_code == 202
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").status_code == 404
    again = client.delete(f"/v2/{repository_name}/blobs/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]


def test_blob_is_only_visible_in_its_repository(client: httpx.Client, repository_name: str) -> None:
    # given a blob pushed to one repository and another repository
    digest = push_blob(client, repository_name, DATA)
    other = f"{repository_name}-other"
    push_blob(client, other, b"something else")
    # when the other repository is asked for the blob
    response = client.get(f"/v2/{other}/blobs/{digest}")
    # then it does not have it
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_range_on_head(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when a HEAD carries a Range
    response = client.head(f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=0-9"})
    # then it describes the partial response
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(DATA)}"
    assert response.headers["Content-Length"] == "10"


def test_range_end_past_size_is_clamped(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob of 1024 bytes
    digest = push_blob(client, repository_name, DATA)
    # when a range running past the end is asked for
    response = client.get(
        f"/v2/{repository_name}/blobs/{digest}", headers={"Range": "bytes=1000-5000"}
    )
    # then the available bytes come back
    assert response.status_code == 206
    assert response.content == DATA[1000:]
    assert response.headers["Content-Range"] == f"bytes 1000-1023/{len(DATA)}"


def test_unsupported_method_is_405(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, DATA)
    # when a method the endpoint does not have is used
    response = client.put(f"/v2/{repository_name}/blobs/{digest}", content=b"x")
    # then it is 405 with the error envelope
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]
