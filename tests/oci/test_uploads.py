"""Blob uploads: POST, monolithic POST, PATCH chunks, status, PUT, cancel and mount."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx

from tests.conftest import EcrdServer
from tests.oci.helpers import digest_of, error_codes, push_blob, start_upload

CHUNK_A = b"a" * 1000
CHUNK_B = b"b" * 500
CHUNK_C = b"c" * 24


def patch(client: httpx.Client, location: str, start: int, data: bytes) -> httpx.Response:
    return client.patch(
        location,
        content=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}",
            "Content-Length": str(len(data)),
        },
    )


def test_post_starts_an_upload(client: httpx.Client, repository_name: str) -> None:
    # given a repository name
    # when an upload is started
    response = client.post(f"/v2/{repository_name}/blobs/uploads/")
    # then it is accepted with a location, an empty range and a session id
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.startswith(f"/v2/{repository_name}/blobs/uploads/")
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    assert location.endswith(response.headers["Docker-Upload-UUID"])


def test_monolithic_post_creates_the_blob(client: httpx.Client, repository_name: str) -> None:
    # given some bytes and their digest
    data = b"monolithic blob"
    digest = digest_of(data)
    # when they are posted in one request with ?digest=
    response = client.post(
        f"/v2/{repository_name}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    # then the blob is created at the returned location
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repository_name}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(response.headers["Location"]).content == data


def test_chunked_upload_in_order(client: httpx.Client, repository_name: str) -> None:
    # given a started upload
    location = start_upload(client, repository_name)
    # when chunks are patched in order
    first = patch(client, location, 0, CHUNK_A)
    second = patch(client, first.headers["Location"], len(CHUNK_A), CHUNK_B)
    # then each is accepted and the range grows
    assert first.status_code == 202
    assert first.headers["Range"] == f"0-{len(CHUNK_A) - 1}"
    assert second.status_code == 202
    assert second.headers["Range"] == f"0-{len(CHUNK_A) + len(CHUNK_B) - 1}"
    # and the status endpoint agrees
    status = client.get(second.headers["Location"])
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{len(CHUNK_A) + len(CHUNK_B) - 1}"
    assert status.headers["Docker-Upload-UUID"]
    # when the upload is closed with the digest
    data = CHUNK_A + CHUNK_B
    digest = digest_of(data)
    done = client.put(second.headers["Location"], params={"digest": digest})
    # then the blob exists with that digest
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/{repository_name}/blobs/{digest}"
    assert done.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == data


def test_patch_without_content_range_appends(client: httpx.Client, repository_name: str) -> None:
    # given a started upload
    location = start_upload(client, repository_name)
    # when a streamed chunk arrives with no Content-Range
    response = client.patch(location, content=CHUNK_A)
    # then it is appended
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(CHUNK_A) - 1}"


def test_out_of_order_chunk_is_416_with_range(client: httpx.Client, repository_name: str) -> None:
    # given an upload holding one chunk
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    # when a chunk starting past the current offset arrives
    response = patch(client, location, len(CHUNK_A) + 10, CHUNK_B)
    # then it is refused with the range the registry has
    assert response.status_code == 416
    assert response.headers["Range"] == f"0-{len(CHUNK_A) - 1}"
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    # and the upload is unchanged
    assert client.get(location).headers["Range"] == f"0-{len(CHUNK_A) - 1}"


def test_put_with_final_chunk(client: httpx.Client, repository_name: str) -> None:
    # given an upload holding two chunks
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    patch(client, location, len(CHUNK_A), CHUNK_B)
    data = CHUNK_A + CHUNK_B + CHUNK_C
    digest = digest_of(data)
    # when the last chunk comes with the closing PUT
    response = client.put(
        location,
        params={"digest": digest},
        content=CHUNK_C,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{len(CHUNK_A) + len(CHUNK_B)}-{len(data) - 1}",
        },
    )
    # then the blob holds all three chunks
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == data


def test_post_then_single_put(client: httpx.Client, repository_name: str) -> None:
    # given a started upload
    location = start_upload(client, repository_name)
    data = b"one shot"
    digest = digest_of(data)
    # when the whole blob comes with the PUT
    response = client.put(
        location,
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    # then it is created
    assert response.status_code == 201
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == data


def test_wrong_digest_fails_and_discards_the_upload(
    client: httpx.Client, repository_name: str
) -> None:
    # given an upload holding some bytes
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    wrong = digest_of(b"other bytes")
    # when it is closed with a digest that does not match
    response = client.put(location, params={"digest": wrong})
    # then the digest is invalid, no blob exists, and the upload is gone
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.head(f"/v2/{repository_name}/blobs/{wrong}").status_code == 404
    assert client.head(f"/v2/{repository_name}/blobs/{digest_of(CHUNK_A)}").status_code == 404
    status = client.get(location)
    assert status.status_code == 404
    assert error_codes(status) == ["BLOB_UPLOAD_UNKNOWN"]


def test_monolithic_post_with_wrong_digest_leaves_nothing(
    client: httpx.Client, repository_name: str
) -> None:
    # given bytes and a digest of other bytes
    data = b"real bytes"
    wrong = digest_of(b"claimed bytes")
    # when they are posted monolithically
    response = client.post(
        f"/v2/{repository_name}/blobs/uploads/", params={"digest": wrong}, content=data
    )
    # then it is refused and neither digest is a blob
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.head(f"/v2/{repository_name}/blobs/{wrong}").status_code == 404
    assert client.head(f"/v2/{repository_name}/blobs/{digest_of(data)}").status_code == 404


def test_put_without_digest_is_refused(client: httpx.Client, repository_name: str) -> None:
    # given an upload holding some bytes
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    # when it is closed with no digest parameter
    response = client.put(location)
    # then the request is invalid and the upload is still there to finish
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.get(location).status_code == 204
    done = client.put(location, params={"digest": digest_of(CHUNK_A)})
    assert done.status_code == 201


def test_malformed_digest_on_close_is_digest_invalid(
    client: httpx.Client, repository_name: str
) -> None:
    # given an upload holding some bytes
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    # when it is closed with a malformed digest
    response = client.put(location, params={"digest": "sha256:nothex"})
    # then it is DIGEST_INVALID
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_cancel_upload(client: httpx.Client, repository_name: str) -> None:
    # given an upload holding some bytes
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_A)
    # when it is cancelled
    response = client.delete(location)
    # then it is gone
    assert response.status_code == 204
    status = client.get(location)
    assert status.status_code == 404
    assert error_codes(status) == ["BLOB_UPLOAD_UNKNOWN"]
    assert client.delete(location).status_code == 404


def test_unknown_upload_id_is_404(client: httpx.Client, repository_name: str) -> None:
    # given a repository with a real upload, and an id nobody issued
    start_upload(client, repository_name)
    location = f"/v2/{repository_name}/blobs/uploads/00000000-0000-0000-0000-000000000000"
    # when the unknown upload is used
    responses = [
        client.get(location),
        client.patch(location, content=b"x"),
        client.put(location, params={"digest": digest_of(b"x")}, content=b"x"),
        client.delete(location),
    ]
    # then every request is BLOB_UPLOAD_UNKNOWN
    for response in responses:
        assert response.status_code == 404
        assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_is_bound_to_its_repository(client: httpx.Client, repository_name: str) -> None:
    # given an upload in one repository
    location = start_upload(client, repository_name)
    upload_id = location.rsplit("/", 1)[1]
    other = f"{repository_name}-other"
    start_upload(client, other)
    # when another repository's URL names it
    response = client.get(f"/v2/{other}/blobs/uploads/{upload_id}")
    # then it is unknown there
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_cross_repository_mount(client: httpx.Client, repository_name: str) -> None:
    # given a blob in a source repository
    data = b"shared layer"
    digest = push_blob(client, repository_name, data)
    target = f"{repository_name}-target"
    # when another repository mounts it
    response = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": repository_name}
    )
    # then it is created there without an upload
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mount_of_missing_blob_falls_back_to_upload(
    client: httpx.Client, repository_name: str
) -> None:
    # given a source repository without the blob
    push_blob(client, repository_name, b"something")
    digest = digest_of(b"not in the source")
    target = f"{repository_name}-target"
    # when another repository tries to mount it
    response = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": repository_name}
    )
    # then an ordinary upload session is started instead
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{target}/blobs/uploads/")
    assert client.head(f"/v2/{target}/blobs/{digest}").status_code == 404


def test_mount_from_unknown_repository_falls_back_to_upload(
    client: httpx.Client, repository_name: str
) -> None:
    # given a source repository that does not exist
    digest = digest_of(b"anything")
    # when a mount from it is asked for
    response = client.post(
        f"/v2/{repository_name}/blobs/uploads/",
        params={"mount": digest, "from": f"{repository_name}-missing"},
    )
    # then an ordinary upload session is started
    assert response.status_code == 202


def test_sha512_monolithic_and_chunked(client: httpx.Client, repository_name: str) -> None:
    # given bytes addressed by sha512
    data = CHUNK_A + CHUNK_B
    digest = push_blob(client, repository_name, data, algorithm="sha512")
    # then the blob is served under its sha512 digest
    fetched = client.get(f"/v2/{repository_name}/blobs/{digest}")
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Docker-Content-Digest"] == digest
    # and a chunked upload can close with a sha512 digest too
    location = start_upload(client, repository_name)
    patch(client, location, 0, CHUNK_C)
    done = client.put(location, params={"digest": digest_of(CHUNK_C, "sha512")})
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == digest_of(CHUNK_C, "sha512")


def test_empty_blob(client: httpx.Client, repository_name: str) -> None:
    # given an upload with no bytes at all
    location = start_upload(client, repository_name)
    digest = digest_of(b"")
    # when it is closed with the digest of nothing
    response = client.put(location, params={"digest": digest})
    # then an empty blob exists
    assert response.status_code == 201
    fetched = client.get(f"/v2/{repository_name}/blobs/{digest}")
    assert fetched.status_code == 200
    assert fetched.content == b""


def _raw_request(server: EcrdServer, head: str, body: bytes) -> None:
    """Send a request whose body is shorter than its Content-Length, then close the socket."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(head.encode() + body)
        time.sleep(0.2)
        raw.shutdown(socket.SHUT_RDWR)


def test_monolithic_post_cut_short_leaves_no_blob(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given a monolithic POST declaring more bytes than the client sends
    data = b"x" * 4096
    digest = digest_of(data)
    head = (
        f"POST /v2/{repository_name}/blobs/uploads/?digest={digest} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    # when the client closes after half of the body
    _raw_request(server, head, data[: len(data) // 2])
    # then no blob is left under the digest, nor under the digest of what arrived
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if client.get("/v2/").status_code == 200:
            break
        time.sleep(0.05)
    for candidate in (digest, digest_of(data[: len(data) // 2])):
        response = client.head(f"/v2/{repository_name}/blobs/{candidate}")
        assert response.status_code == 404


def test_streamed_chunk_without_length(client: httpx.Client, repository_name: str) -> None:
    # given a started upload
    location = start_upload(client, repository_name)

    def pieces() -> Iterator[bytes]:
        yield CHUNK_A
        yield CHUNK_B

    # when a chunk arrives with chunked transfer encoding (no Content-Length)
    response = client.patch(location, content=pieces())
    # then all of it is appended and the blob closes to the right digest
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(CHUNK_A) + len(CHUNK_B) - 1}"
    done = client.put(location, params={"digest": digest_of(CHUNK_A + CHUNK_B)})
    assert done.status_code == 201


def test_content_range_not_matching_length_is_416(
    client: httpx.Client, repository_name: str
) -> None:
    # given a started upload
    location = start_upload(client, repository_name)
    # when a chunk's Content-Range covers more bytes than its body
    response = client.patch(
        location, content=CHUNK_A, headers={"Content-Range": f"0-{len(CHUNK_A) + 9}"}
    )
    # then it is refused and nothing was appended
    assert response.status_code == 416
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    assert client.get(location).headers["Range"] == "0-0"


def test_monolithic_post_of_empty_blob(client: httpx.Client, repository_name: str) -> None:
    # given the digest of no bytes
    digest = digest_of(b"")
    # when an empty body is posted with it
    response = client.post(f"/v2/{repository_name}/blobs/uploads/", params={"digest": digest})
    # then the empty blob is created
    assert response.status_code == 201
    assert client.head(f"/v2/{repository_name}/blobs/{digest}").headers["Content-Length"] == "0"


def test_pushing_an_existing_blob_again(client: httpx.Client, repository_name: str) -> None:
    # given a pushed blob
    digest = push_blob(client, repository_name, CHUNK_A)
    # when the same bytes are pushed again
    again = push_blob(client, repository_name, CHUNK_A)
    # then it is the same blob, still served
    assert again == digest
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == CHUNK_A
