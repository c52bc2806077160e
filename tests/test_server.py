"""The server process: plain HTTP answers a TLS hello with a 400, request heads are bounded,
and --tls-cert serves HTTPS."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EcrdServer


def tls_client_hello() -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def test_tls_hello_on_plain_http_gets_an_http_400(server: EcrdServer) -> None:
    # given a plain-HTTP server, when a client opens with a TLS ClientHello (as docker probes)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(tls_client_hello())
        reply = connection.recv(64)
    # then it answers in HTTP, so the client can fall back to plain HTTP
    assert reply.startswith(b"HTTP/1.1 400")


def test_an_endless_request_head_is_cut_off_with_431(server: EcrdServer) -> None:
    # given a client that keeps sending one header and never ends the head
    piece = b"a" * 8192
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        try:
            while sent < 4 * 1024 * 1024:  # bounded: 4 MiB at most
                connection.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up, as it should
        try:
            reply = connection.recv(64)
        except ConnectionResetError:
            reply = b""
    # then the server stopped reading long before 4 MiB: 431, or a closed connection
    assert sent < 4 * 1024 * 1024
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[EcrdServer]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    instance = EcrdServer(tmp_path / "data", ["--tls-cert", str(cert), "--tls-key", str(key)])
    instance.start()
    instance.certificate = cert  # type: ignore[attr-defined]
    yield instance
    instance.stop()


def test_tls_serves_https(tls_server: EcrdServer) -> None:
    certificate = tls_server.certificate  # type: ignore[attr-defined]
    response = httpx.get(f"https://{tls_server.host}/v2/", verify=ssl.create_default_context(
        cafile=str(certificate)), timeout=10)  # fmt: skip
    # an anonymous ping is challenged, with the https realm clients log in to
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Basic realm="https://{tls_server.host}",service="ecr.amazonaws.com"'
    )
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
