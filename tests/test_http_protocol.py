"""The bounded request head, fed to the protocol directly so each read is exactly one call.

The transport is a stand-in (asyncio's, a third party's interface), recording what the
protocol writes; the application answers 204 to anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from ecrd.http_protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def no_content(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def feed(*reads: bytes) -> RecordingTransport:
    """Feed the reads one data_received call each; let the app answer; return the transport."""

    async def scenario() -> RecordingTransport:
        config = uvicorn.Config(no_content, log_level="error")
        config.load()
        protocol = BoundedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        for data in reads:
            protocol.data_received(data)
            await asyncio.sleep(0.01)
        return transport

    return asyncio.run(scenario())


def request(body_size: int) -> bytes:
    head = f"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: {body_size}\r\n\r\n".encode()
    return head + b"b" * body_size


def test_a_whole_request_with_a_large_body_in_one_read_is_served() -> None:
    # when one read holds a short head and a body longer than the head limit
    transport = feed(request(MAX_HEAD_BYTES + 1000))
    # then the request is answered, not refused as a long head
    assert transport.written.startswith(b"HTTP/1.1 204")


def test_a_read_that_ends_one_request_and_starts_the_next_is_not_a_long_head() -> None:
    # when a read holds a whole large request and the first bytes of the next
    transport = feed(request(MAX_HEAD_BYTES + 1000) + b"GET /y HTTP/1.1\r\nHo", b"st: a\r\n\r\n")
    # then both are answered
    assert transport.written.count(b"HTTP/1.1 204") == 2
    assert b"431" not in transport.written


def test_a_head_over_the_limit_across_reads_gets_431_and_a_closed_connection() -> None:
    # when a head keeps coming in pieces past the limit
    pieces = [b"GET /x HTTP/1.1\r\nHost: a\r\nX-Filler: "] + [b"f" * 8192] * 9
    transport = feed(*pieces)
    # then the server refuses it and hangs up
    assert transport.written.startswith(b"HTTP/1.1 431")
    assert transport.closed
