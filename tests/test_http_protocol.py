"""The HTTP protocol's bounds on a connection: head size, head time, body stalls.

The first part feeds the protocol directly, so each read is exactly one call and the
application can be made slow at will. The transport there is a stand-in (asyncio's, a third
party's interface) recording what the protocol writes. The second part drives a real server
over real sockets, with short limits.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from ecrd.http_protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from tests.conftest import EcrdServer, basic_login
from tests.oci.helpers import digest_of, start_upload

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# The protocol, fed directly


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading_paused = False
        self.protocol: asyncio.Protocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        # As asyncio's transports do: connection_lost comes on a later turn of the loop.
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False


async def no_content(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def open_connection(
    app: App, head_timeout: float = 10.0, body_stall: float = 10.0
) -> RecordingTransport:
    config = uvicorn.Config(app, log_level="error")
    config.load()
    factory = BoundedHttpToolsProtocol.with_limits(head_timeout, body_stall)
    protocol = factory(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return transport


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return condition()


def feed(*reads: bytes) -> RecordingTransport:
    """Feed the reads one data_received call each; let the app answer; return the transport."""

    async def scenario() -> RecordingTransport:
        transport = await open_connection(no_content)
        for data in reads:
            if transport.protocol is None:
                raise RuntimeError("no protocol")
            if transport.closed:
                break  # a closed transport delivers nothing more
            transport.protocol.data_received(data)
            await asyncio.sleep(0.01)
        return transport

    return asyncio.run(scenario())


def request(body_size: int) -> bytes:
    head = f"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: {body_size}\r\n\r\n".encode()
    return head + b"b" * body_size


def body_reader(delay: float, seen: list[str]) -> App:
    """An app slow to take the body: it waits `delay` before each receive(), then answers
    200 with the number of body bytes it got."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            await asyncio.sleep(delay)
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                return
            size += len(message["body"])
            if not message.get("more_body"):
                break
        body = str(size).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.metadata_independent
def test_a_whole_request_with_a_large_body_in_one_read_is_served() -> None:
    # when one read holds a short head and a body longer than the head limit
    transport = feed(request(MAX_HEAD_BYTES + 1000))
    # then the request is answered, not refused as a long head
    assert transport.written.startswith(b"HTTP/1.1 204")


@pytest.mark.metadata_independent
def test_a_read_that_ends_one_request_and_starts_the_next_is_not_a_long_head() -> None:
    # when a read holds a whole large request and the first bytes of the next
    transport = feed(request(MAX_HEAD_BYTES + 1000) + b"GET /y HTTP/1.1\r\nHo", b"st: a\r\n\r\n")
    # then both are answered
    assert transport.written.count(b"HTTP/1.1 204") == 2
    assert b"431" not in transport.written


@pytest.mark.metadata_independent
def test_a_head_over_the_limit_across_reads_gets_431_and_a_closed_connection() -> None:
    # when a head keeps coming in pieces past the limit
    pieces = [b"GET /x HTTP/1.1\r\nHost: a\r\nX-Filler: "] + [b"f" * 8192] * 9
    transport = feed(*pieces)
    # then the server refuses it and hangs up
    assert transport.written.startswith(b"HTTP/1.1 431")
    assert transport.closed


@pytest.mark.metadata_independent
def test_a_stalled_body_is_cut_off_and_the_application_sees_the_client_go() -> None:
    seen: list[str] = []

    async def scenario() -> tuple[RecordingTransport, bool]:
        transport = await open_connection(body_reader(0, seen), body_stall=0.2)
        if transport.protocol is None:
            raise RuntimeError("no protocol")
        # given a body of 100 bytes of which 10 arrive, then nothing
        transport.protocol.data_received(request(100)[:-90])
        # when the stall limit passes
        closed = await wait_for(lambda: transport.closed and "http.disconnect" in seen)
        return transport, closed

    transport, closed = asyncio.run(scenario())
    # then the connection is closed without a reply, and the app got the 10 bytes, then
    # the client's disconnect
    assert closed
    assert transport.written == b""
    assert seen == ["http.request", "http.disconnect"]


@pytest.mark.metadata_independent
def test_an_application_slow_to_read_the_body_does_not_trip_the_stall_limit() -> None:
    seen: list[str] = []
    body_size = 300 * 1024

    async def scenario() -> tuple[RecordingTransport, bool]:
        # given an app that waits 0.5 s before each read, and a stall limit of 0.2 s
        transport = await open_connection(body_reader(0.5, seen), body_stall=0.2)
        if transport.protocol is None:
            raise RuntimeError("no protocol")
        whole = request(body_size)
        # when the client sends more than uvicorn buffers, so that it stops reading
        transport.protocol.data_received(whole[: 200 * 1024])
        if not transport.reading_paused:
            raise RuntimeError("flow control did not pause reading")
        # and sends the rest as soon as the server reads again (as a socket would deliver it)
        if not await wait_for(lambda: not transport.reading_paused):
            raise RuntimeError("reading never resumed")
        transport.protocol.data_received(whole[200 * 1024 :])
        answered = await wait_for(lambda: b"\r\n\r\n" in transport.written)
        return transport, answered

    transport, answered = asyncio.run(scenario())
    # then the whole body is read and answered: waiting for the app is not a stalled client
    assert answered
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert transport.written.endswith(str(body_size).encode())
    assert "http.disconnect" not in seen


@pytest.mark.metadata_independent
def test_a_client_waiting_for_100_continue_is_not_a_stalled_body() -> None:
    seen: list[str] = []

    async def scenario() -> tuple[RecordingTransport, bool]:
        # given an app that takes 0.5 s before it reads, and a stall limit of 0.2 s
        transport = await open_connection(body_reader(0.5, seen), body_stall=0.2)
        if transport.protocol is None:
            raise RuntimeError("no protocol")
        # when a client asks to continue, and sends its body only once told to
        head = b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        transport.protocol.data_received(head)
        if not await wait_for(lambda: b"100 Continue" in transport.written):
            raise RuntimeError("no 100 Continue")
        transport.protocol.data_received(b"hello")
        answered = await wait_for(lambda: b"HTTP/1.1 200" in transport.written)
        return transport, answered

    transport, answered = asyncio.run(scenario())
    # then it is answered: the time before the 100 Continue was the server's
    assert answered
    assert transport.written.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
    assert not transport.closed


@pytest.mark.metadata_independent
def test_a_pipelined_head_is_not_timed_out_inside_an_earlier_response() -> None:
    async def slow_then_fast(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"] == "/slow":
            await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> RecordingTransport:
        # given a head limit of 0.2 s and a first response that takes 0.5 s
        transport = await open_connection(slow_then_fast, head_timeout=0.2)
        if transport.protocol is None:
            raise RuntimeError("no protocol")
        # when the client pipelines the start of a second head behind the first request
        transport.protocol.data_received(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HT")
        # and sends the rest of it once the first response is through
        if not await wait_for(lambda: transport.written.endswith(b"ok")):
            raise RuntimeError("no first response")
        transport.protocol.data_received(b"TP/1.1\r\nHost: a\r\n\r\n")
        await wait_for(lambda: transport.written.count(b"ok") == 2)
        return transport

    transport = asyncio.run(scenario())
    # then both are answered whole: no 408 inside the first response
    assert transport.written.count(b"HTTP/1.1 200") == 2
    assert b"408" not in transport.written


# A real server with short limits

HEAD_TIMEOUT = 2
BODY_STALL = 1
# Every drop must happen well within this (the limits are 1-2 s).
BOUND = 10.0


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("limits") / "data",
        environment={
            "ECRD_REQUEST_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
            "ECRD_REQUEST_BODY_STALL_SECONDS": str(BODY_STALL),
        },
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def limited_client(limited_server: EcrdServer) -> Iterator[httpx.Client]:
    with limited_server.http() as http:
        yield http


def connect(server: EcrdServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def read_until_closed(connection: socket.socket, within: float = BOUND) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection, and whether it did in time."""
    received = bytearray()
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        connection.settimeout(left)
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return bytes(received), True
        if not chunk:
            return bytes(received), True
        received += chunk
    return bytes(received), False


def logged(server: EcrdServer, text: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while text not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in server.log_path.read_text()


def test_a_head_sent_a_byte_at_a_time_is_cut_off(limited_server: EcrdServer) -> None:
    # given a client that sends its head one byte every 0.3 s (the whole would take 20 s)
    head = (
        f"GET /v2/ HTTP/1.1\r\nHost: {limited_server.host}\r\n"
        "User-Agent: a-very-slow-client/1.0\r\n\r\n"
    ).encode()
    sent = 0
    with connect(limited_server) as connection:
        started = time.monotonic()
        try:
            while sent < len(head) and time.monotonic() - started < BOUND:
                readable, _, _ = select.select([connection], [], [], 0.3)
                if readable:
                    break  # the server answered or hung up: stop sending
                connection.sendall(head[sent : sent + 1])
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        # when the head limit passes
        reply, closed = read_until_closed(connection)
        elapsed = time.monotonic() - started
    # then the server answered 408 and closed (a reset may race the reply), before the
    # head was complete: each byte does not restart the clock
    assert closed
    assert sent < len(head)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert HEAD_TIMEOUT - 0.5 <= elapsed < BOUND
    assert logged(limited_server, "request head not complete in 2 s")


def test_a_connection_that_sends_nothing_is_closed(limited_server: EcrdServer) -> None:
    # given a client that connects and sends nothing
    with connect(limited_server) as connection:
        started = time.monotonic()
        # when the head limit passes
        reply, closed = read_until_closed(connection)
        elapsed = time.monotonic() - started
    # then the server closes the connection, without a reply to a request never made
    assert closed
    assert reply == b""
    assert elapsed < BOUND


def test_an_idle_keep_alive_connection_outlives_the_head_limit(
    limited_server: EcrdServer,
) -> None:
    # given a kept-alive connection that made one request
    connection = http.client.HTTPConnection("127.0.0.1", limited_server.port, timeout=BOUND)
    authorization = {"Authorization": f"Basic {basic_login(limited_server)}"}
    try:
        connection.request("GET", "/v2/", headers=authorization)
        first = connection.getresponse()
        first.read()
        if connection.sock is None:
            raise RuntimeError("the first response closed the connection")
        local_address = connection.sock.getsockname()
        # when it stays idle for longer than the head limit
        time.sleep(HEAD_TIMEOUT + 1)
        # then the next request on it is still answered: the head clock starts with its
        # first byte, and idleness is bounded by the keep-alive timeout instead
        connection.request("GET", "/v2/", headers=authorization)
        second = connection.getresponse()
        second.read()
        assert connection.sock is not None
        assert connection.sock.getsockname() == local_address
    finally:
        connection.close()
    assert first.status == 200
    assert second.status == 200


def patch_head(server: EcrdServer, location: str, length: int) -> str:
    """The head of a logged-in PATCH of `length` bytes to an upload, as a client writes it."""
    return (
        f"PATCH {location} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        f"Authorization: Basic {basic_login(server)}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


def test_a_stalled_upload_body_is_dropped_and_resumable(
    limited_server: EcrdServer, limited_client: httpx.Client, repository_name: str
) -> None:
    data = bytes(range(256)) * 40  # 10 KiB
    arrived = 3000
    # given a started upload
    location = start_upload(limited_client, repository_name)
    # when a PATCH declares the whole blob, sends part of it, then nothing
    head = patch_head(limited_server, location, len(data))
    with connect(limited_server) as connection:
        connection.sendall(head.encode() + data[:arrived])
        started = time.monotonic()
        reply, closed = read_until_closed(connection)
        elapsed = time.monotonic() - started
    # then the server drops the connection, with no reply mid-body
    assert closed
    assert reply == b""
    assert elapsed < BOUND
    assert logged(limited_server, "request body sent nothing for 1 s")
    # and the upload reports the bytes that arrived (polling while the handler finishes)
    status = limited_client.get(location)
    deadline = time.monotonic() + 5
    while status.headers.get("Range") != f"0-{arrived - 1}" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = limited_client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{arrived - 1}"
    # and the client resumes from there to the right digest
    rest = limited_client.patch(
        location, content=data[arrived:], headers={"Content-Range": f"{arrived}-{len(data) - 1}"}
    )
    assert rest.status_code == 202
    assert rest.headers["Range"] == f"0-{len(data) - 1}"
    digest = digest_of(data)
    done = limited_client.put(location, params={"digest": digest})
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == digest
    assert limited_client.get(f"/v2/{repository_name}/blobs/{digest}").content == data


def test_many_stalled_heads_do_not_starve_other_clients(
    limited_server: EcrdServer, limited_client: httpx.Client
) -> None:
    limited_server.registry_password()  # the login, before the clocks start
    stalled: list[socket.socket] = []
    try:
        # given 200 connections that each sent half a head
        for _ in range(200):
            connection = connect(limited_server)
            connection.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {limited_server.host}\r\n".encode())
            stalled.append(connection)
        # when other clients make requests meanwhile
        statuses = [limited_client.get("/v2/").status_code for _ in range(10)]
        # then they are answered while the stalled connections are all still open
        readable, _, _ = select.select(stalled, [], [], 0)
        assert statuses == [200] * 10
        assert readable == []
        # and afterwards every stalled connection gets a 408 and is closed
        replies = [read_until_closed(connection) for connection in stalled]
    finally:
        for connection in stalled:
            connection.close()
    assert all(closed for _, closed in replies)
    assert all(reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for reply, _ in replies)
    assert all(b"\r\nconnection: close\r\n" in reply for reply, _ in replies)


def test_a_slow_but_steady_body_is_not_dropped(
    limited_server: EcrdServer, limited_client: httpx.Client, repository_name: str
) -> None:
    data = b"slowdata"
    # given a started upload
    location = start_upload(limited_client, repository_name)
    head = patch_head(limited_server, location, len(data))
    with connect(limited_server) as connection:
        # when the client sends its body a byte every 0.5 s (4 s in all, the limit is 1 s)
        connection.sendall(head.encode())
        for index in range(len(data)):
            time.sleep(0.5)
            connection.sendall(data[index : index + 1])
        connection.settimeout(BOUND)
        reply = connection.recv(65536)
    # then the whole chunk is taken
    assert reply.startswith(b"HTTP/1.1 202 ")
    assert f"\r\nrange: 0-{len(data) - 1}\r\n".encode() in reply.lower()


def test_a_large_body_sent_fast_is_not_dropped(
    limited_client: httpx.Client, repository_name: str
) -> None:
    # given 64 MiB, far more than the server buffers (it stops reading while the handler
    # writes, which is not the client stalling)
    data = bytes(range(256)) * (256 * 1024)
    digest = digest_of(data)
    location = start_upload(limited_client, repository_name)
    # when it is uploaded in one request as fast as the client can
    done = limited_client.put(location, params={"digest": digest}, content=data, timeout=120)
    # then the blob is whole
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == digest


@pytest.mark.metadata_independent
def test_the_limits_reach_worker_processes(tmp_path: Path) -> None:
    # given a server with two worker processes and a 1 s head limit
    instance = EcrdServer(
        tmp_path / "data",
        extra_args=["--workers", "2"],
        environment={"ECRD_REQUEST_HEAD_TIMEOUT_SECONDS": "1"},
    )
    instance.start()
    try:
        # when a client sends half a head and waits
        with connect(instance) as connection:
            connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            reply, closed = read_until_closed(connection)
    finally:
        instance.stop()
    # then the worker applies the configured limit, not the 20 s default
    assert closed
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
