"""A full disk: uploads that run out of room answer 507 (the API's ServerException, also 507)
naming the cause, and leave neither bytes nor an upload row behind.

The data folder is a small tmpfs mounted for the test (root only), so the kernel itself says
"No space left on device".
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import EcrdServer
from tests.oci.helpers import error_codes, push_blob

# The blob bytes must land on the small disk: with an S3 blob store they would not.
pytestmark = pytest.mark.filesystem_blobs
DISK_BYTES = 12 * 1024 * 1024
PIECE = b"\x5a" * (1024 * 1024)


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 12 MiB tmpfs for the module, unmounted afterwards."""
    mount_point = tmp_path_factory.mktemp("small-disk") / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def full_disk_server(small_disk: Path) -> Iterator[EcrdServer]:
    """One server on the small disk for the module: each test checks that its failed upload
    left no bytes behind, so the next one finds the room free again."""
    instance = EcrdServer(small_disk / "data")
    # The log goes elsewhere: it must not take room from the disk under test.
    instance.log_path = small_disk.parent / "full-disk-server.log"
    instance.start()
    yield instance
    instance.stop()


def pieces(count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield PIECE


def upload_files(server: EcrdServer) -> list[Path]:
    return sorted((server.data_dir / "uploads").iterdir())


def upload_rows(server: EcrdServer) -> int:
    return int(server.metadata_query("SELECT count(*) FROM uploads")[0][0])


def assert_insufficient_storage(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert error_codes(response) == ["UNKNOWN"]
    message = response.json()["errors"][0]["message"]
    assert "insufficient storage" in message and "No space left on device" in message, message


def test_a_chunk_that_fills_the_disk_is_507_and_the_upload_is_gone(
    full_disk_server: EcrdServer,
) -> None:
    server = full_disk_server
    with server.http() as client:
        # given an upload in progress
        location = client.post("/v2/full/disk/blobs/uploads/").headers["Location"]
        # when a chunk larger than the free space is sent
        response = client.patch(
            location, content=pieces(32), headers={"Content-Type": "application/octet-stream"}
        )
        # then it is 507 naming the cause
        assert_insufficient_storage(response)
        # and the upload is gone at once: no bytes, no row, unknown to the client
        assert upload_files(server) == []
        assert upload_rows(server) == 0
        gone = client.get(location)
        assert gone.status_code == 404
        assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]
        # and the room is free again: a push that fits works
        push_blob(client, "full/disk", b"small enough")


def test_a_whole_upload_that_fills_the_disk_is_507_and_leaves_nothing(
    full_disk_server: EcrdServer,
) -> None:
    server = full_disk_server
    body = PIECE * 32
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    with server.http() as client:
        response = client.post(
            "/v2/full/monolithic/blobs/uploads/",
            params={"digest": digest},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert_insufficient_storage(response)
        assert upload_files(server) == []
        assert upload_rows(server) == 0
        assert client.head(f"/v2/full/monolithic/blobs/{digest}").status_code == 404


def test_upload_layer_part_that_fills_the_disk_is_a_server_exception_of_507(
    full_disk_server: EcrdServer,
) -> None:
    server = full_disk_server
    ecr = server.ecr()
    ecr.create_repository(repositoryName="full/api")
    upload_id = ecr.initiate_layer_upload(repositoryName="full/api")["uploadId"]
    part = PIECE * 5
    offset = 0
    # when parts are sent until the disk is full (bounded: the disk holds at most 2 of them)
    with pytest.raises(ClientError) as raised:
        for _ in range(4):
            ecr.upload_layer_part(
                repositoryName="full/api",
                uploadId=upload_id,
                partFirstByte=offset,
                partLastByte=offset + len(part) - 1,
                layerPartBlob=part,
            )
            offset += len(part)
    # then the part that did not fit is ECR's ServerException with status 507 and the cause
    error = raised.value.response
    assert error["Error"]["Code"] == "ServerException", error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 507
    assert "insufficient storage" in error["Error"]["Message"]
    # and the upload is gone with its bytes
    assert upload_files(server) == []
    with pytest.raises(ClientError) as again:
        ecr.upload_layer_part(
            repositoryName="full/api",
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=base64.b64decode(b"eA=="),
        )
    assert again.value.response["Error"]["Code"] == "UploadNotFoundException"
