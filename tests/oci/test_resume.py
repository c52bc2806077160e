"""Resumable uploads: across a server restart, and after a client drops mid-PATCH."""

from __future__ import annotations

import socket
import time

import httpx

from tests.conftest import EcrdServer, basic_login
from tests.oci.helpers import digest_of, start_upload

DATA = bytes(range(256)) * 64  # 16 KiB


def _range_end(response: httpx.Response) -> int:
    """The offset an upload has reached, from its `Range: 0-<last>` header."""
    first, last = response.headers["Range"].split("-")
    assert first == "0"
    return int(last) + 1


def test_upload_continues_across_restart(own_server: EcrdServer, repository_name: str) -> None:
    # given an upload holding the first half of a blob
    half = len(DATA) // 2
    with own_server.http() as client:
        location = start_upload(client, repository_name)
        first = client.patch(
            location, content=DATA[:half], headers={"Content-Range": f"0-{half - 1}"}
        )
        assert first.status_code == 202
    # when the server restarts
    own_server.restart()
    with own_server.http() as client:
        # then the upload's progress survived
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{half - 1}"
        # and it can be finished with the rest of the bytes to the right digest
        second = client.patch(
            location,
            content=DATA[half:],
            headers={"Content-Range": f"{half}-{len(DATA) - 1}"},
        )
        assert second.status_code == 202
        digest = digest_of(DATA)
        done = client.put(location, params={"digest": digest})
        assert done.status_code == 201
        assert done.headers["Docker-Content-Digest"] == digest
        assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == DATA


def test_client_disconnect_mid_patch_can_resume(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given a started upload
    location = start_upload(client, repository_name)
    sent = 5000
    # when a PATCH declares the whole blob but the client drops after part of it
    head = (
        f"PATCH {location} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        f"Authorization: Basic {basic_login(server)}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(DATA)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(head.encode() + DATA[:sent])
        time.sleep(0.2)
        raw.shutdown(socket.SHUT_RDWR)
    # then the upload reports how far it got (polling briefly while the server notices)
    offset = -1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = client.get(location)
        assert status.status_code == 204
        offset = _range_end(status) if status.headers["Range"] != "0-0" else 0
        if offset == sent:
            break
        time.sleep(0.05)
    assert offset == sent
    # and the client continues from that offset to the correct digest
    rest = client.patch(
        location,
        content=DATA[offset:],
        headers={"Content-Range": f"{offset}-{len(DATA) - 1}"},
    )
    assert rest.status_code == 202
    assert rest.headers["Range"] == f"0-{len(DATA) - 1}"
    digest = digest_of(DATA)
    done = client.put(location, params={"digest": digest})
    assert done.status_code == 201
    assert client.get(f"/v2/{repository_name}/blobs/{digest}").content == DATA
