"""The log's lines: JSON objects with --log-format json, and no warning when skopeo or
podman probe the plain-HTTP port with TLS (a debug line with the reason instead)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCOUNT_ID, EcrdServer
from tests.observability.helpers import wait_for_lines
from tests.oci.helpers import OCI_MANIFEST, push_image
from tests.test_server import tls_client_hello

TLS_PROBE = "a TLS handshake on the plain-HTTP port (a client probing for https)"
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
SKOPEO_TIMEOUT_SECONDS = 60


def skopeo_inspect(server: EcrdServer, repository: str, folder: Path) -> None:
    """`skopeo inspect --tls-verify=false` of repository:v1, logged in with a registry token;
    skopeo tries https first on such a registry, then falls back to http."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    registries = folder / "registries.conf"
    registries.write_text(REGISTRIES_CONF)
    login = base64.b64encode(f"AWS:{server.registry_password()}".encode()).decode()
    auth_file = folder / "auth.json"
    auth_file.write_text(json.dumps({"auths": {server.host: {"auth": login}}}))
    environment = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(registries)}
    result = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--authfile", str(auth_file),
         f"docker://{server.host}/{repository}:v1"],
        capture_output=True, timeout=SKOPEO_TIMEOUT_SECONDS, env=environment,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def send_raw(server: EcrdServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(data)
        return connection.recv(64)


@pytest.fixture
def debug_server(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path / "data", environment={"ECRD_LOG_LEVEL": "debug"})
    instance.start()
    yield instance
    instance.stop()


@pytest.mark.metadata_independent
def test_a_skopeo_run_leaves_no_warning_about_invalid_http(
    own_server: EcrdServer, tmp_path: Path
) -> None:
    # given an image on a plain-HTTP server logging at the default level
    with own_server.http() as client:
        push_image(client, "probe/image", "v1")
    # when skopeo inspects it (probing with TLS first)
    skopeo_inspect(own_server, "probe/image", tmp_path)
    # then the pull is logged, and no line is about an invalid HTTP request
    assert wait_for_lines(own_server, "path=/v2/probe/image/manifests/v1")
    log = own_server.log_path.read_text(errors="replace")
    assert "Invalid HTTP request" not in log


@pytest.mark.metadata_independent
def test_at_debug_level_a_refused_request_is_a_debug_line_with_its_reason(
    debug_server: EcrdServer, tmp_path: Path
) -> None:
    # given an image on a plain-HTTP server logging at debug
    with debug_server.http() as client:
        push_image(client, "probe/image", "v1")
    # when skopeo inspects it, and a client sends bytes that are not HTTP
    skopeo_inspect(debug_server, "probe/image", tmp_path)
    assert send_raw(debug_server, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    # then the TLS probe and the malformed request are debug lines naming their reason
    probes = wait_for_lines(debug_server, f"Invalid HTTP request received: {TLS_PROBE}")
    assert probes and all(" DEBUG uvicorn.error: " in line for line in probes)
    malformed = wait_for_lines(debug_server, "Invalid HTTP request received: malformed request")
    assert len(malformed) == 1 and " DEBUG uvicorn.error: " in malformed[0]
    # and none of them is a warning
    lines = debug_server.log_path.read_text(errors="replace").splitlines()
    assert [line for line in lines if "Invalid HTTP" in line and "DEBUG" not in line] == []


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path / "data", ["--log-format", "json"])
    instance.start()
    yield instance
    instance.stop()


@pytest.mark.metadata_independent
def test_with_json_format_every_line_is_a_json_object(json_server: EcrdServer) -> None:
    # given a server logging JSON; when an API call, a pull, a refused request and a TLS
    # probe come, and the server stops (start and stop lines are lines too)
    with json_server.http() as client:
        api = client.post(
            "/",
            content=b"{}",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"{ECR_TARGET}.DescribeRepositories",
            },
        )
        manifest, _ = push_image(client, "json/image", "v1")
        pull = client.get("/v2/json/image/manifests/v1", headers={"Accept": OCI_MANIFEST})
    refused = httpx.get(f"{json_server.url}/v2/json/image/manifests/v1", timeout=30)
    assert (api.status_code, pull.status_code, refused.status_code) == (200, 200, 401)
    assert send_raw(json_server, tls_client_hello()).startswith(b"HTTP/1.1 400")
    json_server.stop()

    # then every line of the log is a JSON object with time, level, logger and message
    lines = json_server.log_path.read_text(errors="replace").splitlines()
    assert len(lines) > 5
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["time"].endswith("Z")
    assert any(record["message"].startswith("Started server process") for record in records)
    # and the access lines carry their fields, numbers as numbers
    by_id = {record.get("request_id"): record for record in records}
    api_line = by_id[api.headers["x-amzn-RequestId"]]
    assert api_line["logger"] == "ecrd.access"
    assert api_line["principal"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
    assert (api_line["door"], api_line["route"], api_line["status"]) == (
        "api",
        "ecr:DescribeRepositories",
        200,
    )
    assert api_line["bytes_in"] == 2 and api_line["bytes_out"] == len(api.content)
    pull_line = by_id[pull.headers["X-Request-Id"]]
    assert pull_line["path"] == "/v2/json/image/manifests/v1"
    assert (pull_line["status"], pull_line["bytes_out"]) == (200, len(manifest))
    assert by_id[refused.headers["X-Request-Id"]]["principal"] == "anonymous"
    assert isinstance(pull_line["duration_ms"], float)
