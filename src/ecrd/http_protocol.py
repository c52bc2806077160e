"""uvicorn's httptools protocol with bounds on what a client can make a connection hold.

Each connection is in one phase at a time, and each phase has its bound:

    open ──▶ HEAD ──headers complete──▶ BODY ──message complete──▶ IDLE ──first byte──▶ HEAD

- HEAD: the request line and headers must arrive within `head_timeout`, counted from the
  connection's opening for its first request and from the first byte of each later one, else
  408 and a closed connection (without the 408 if no request began: nothing, or blank lines,
  arrived). The head must also stay under MAX_HEAD_BYTES, else 431 and a closed connection.
- BODY: a client that sends no body bytes for `body_stall` is cut off. The application's
  receive() then gets http.disconnect, as for a client that went away, so an upload keeps the
  bytes that arrived. Bodies are bounded in size by each endpoint, as they are read.
- IDLE: between requests. The response is the application's; an idle keep-alive connection is
  closed by uvicorn's `timeout_keep_alive`.

A clock only runs while the server waits for the client. It is held while reading is paused
(uvicorn's flow control stops reading when the application is slow to take the body), while
a 100 Continue the client waits for is not yet sent, and, for a pipelined head, while an
earlier response on the connection is still going out; it restarts when the hold ends.
Each connection has one call_later handle at most, re-armed when it fires; progress only
moves a timestamp, so thousands of connections cost no tasks and no timer churn.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# Large enough for any real client (a registry token is under 1 KiB); Distribution and nginx
# use similar bounds.
MAX_HEAD_BYTES = 64 * 1024

logger = logging.getLogger("ecrd")


def _plain_response(status_line: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status_line}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


_TOO_LARGE = _plain_response("431 Request Header Fields Too Large", "request head exceeds 64 KiB")
_TIMED_OUT = _plain_response("408 Request Timeout", "request head not received in time")


class _Phase(enum.Enum):
    HEAD = "head"
    BODY = "body"
    IDLE = "idle"


class _FlowControlTellingResumes(FlowControl):
    """uvicorn's flow control, calling `on_resume` on each resume_reading() call.

    uvicorn calls it whenever the application asks for more of the body (each receive(), just
    after any 100 Continue) and when a response completes: the moments a held clock restarts.
    """

    def __init__(self, transport: asyncio.Transport, on_resume: Callable[[], None]) -> None:
        super().__init__(transport)
        self._on_resume = on_resume

    def resume_reading(self) -> None:
        super().resume_reading()
        self._on_resume()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        head_timeout: float,
        body_stall: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not head_timeout > 0 or not body_stall > 0:
            raise ValueError("head_timeout and body_stall must be positive")
        self._head_timeout = head_timeout
        self._body_stall = body_stall
        self._phase = _Phase.HEAD
        # HEAD: when the head's clock started; BODY: when body bytes last arrived (or when the
        # server last began waiting for them).
        self._clock_start = 0.0
        # Whether the pending request began (more than blank lines arrived). A connection with
        # nothing begun is closed without a 408, which a client could take for the answer to a
        # request it sends at that moment.
        self._head_begun = False
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._completed = 0

    @classmethod
    def with_limits(
        cls, head_timeout: float, body_stall: float
    ) -> Callable[..., BoundedHttpToolsProtocol]:
        """The protocol factory for uvicorn's `http` option, with these limits in seconds.

        A functools.partial of this module-level class pickles by reference, which matters:
        with `--workers`, uvicorn pickles its Config, and this with it, into each worker.
        """
        return functools.partial(cls, head_timeout=head_timeout, body_stall=body_stall)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _FlowControlTellingResumes(transport, self._reading_resumed)
        self._begin_head()
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.IDLE:
            # The first bytes of the next request, or blank lines before it: those too, since
            # any read stops uvicorn's keep-alive clock.
            self._begin_head()
        counting = self._phase is _Phase.HEAD
        completed = self._completed
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Only a read that left the same head still unfinished counts: one that finished a
        # request (whose body may be most of it) and began the next does not.
        if counting and self._phase is _Phase.HEAD and self._completed == completed:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        # Armed here rather than in the parser's callbacks, so that a whole request in one
        # read (most GETs) arms and cancels nothing.
        if self._timer is None and self._phase is not _Phase.IDLE:
            self._arm_timer()

    # httptools parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase is _Phase.IDLE:  # the read that ended the last request began this one
            self._begin_head()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._cancel_timer()
        if self.parser.should_upgrade() and self._should_upgrade():
            # The connection goes over to uvicorn's WebSocket protocol, which has its own
            # timeouts; nothing here runs for it any more.
            self._phase = _Phase.IDLE
            return
        self._phase = _Phase.BODY
        self._clock_start = self.loop.time()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._clock_start = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_timer()
        self._phase = _Phase.IDLE
        self._head_bytes = 0
        self._completed += 1

    # The clocks

    def _begin_head(self) -> None:
        self._phase = _Phase.HEAD
        self._clock_start = self.loop.time()
        self._head_begun = False

    def _reading_resumed(self) -> None:
        if self._phase is not _Phase.IDLE:
            self._clock_start = self.loop.time()

    def _limit(self) -> float:
        return self._head_timeout if self._phase is _Phase.HEAD else self._body_stall

    def _arm_timer(self) -> None:
        delay = max(self._clock_start + self._limit() - self.loop.time(), 0.0)
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _clock_held(self) -> bool:
        """Whether the server, not the client, is what the connection waits for."""
        if self.flow.read_paused:
            return True
        if self._phase is _Phase.HEAD:
            # A pipelined head while an earlier response is still being sent: a 408 now would
            # land inside that response.
            return self.cycle is not None and not self.cycle.response_complete
        return self.cycle is not None and self.cycle.waiting_for_100_continue

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._phase is _Phase.IDLE:
            return
        if self._clock_held():
            self._clock_start = self.loop.time()
            self._arm_timer()
            return
        if self.loop.time() - self._clock_start < self._limit():
            self._arm_timer()  # progress since it was armed: wait out the rest
            return
        if self._phase is _Phase.HEAD:
            logger.info(
                "closed the connection from %s: request head not complete in %g s "
                "(request_head_timeout_seconds)",
                self._peer(),
                self._head_timeout,
            )
            if self._head_begun:
                self.transport.write(_TIMED_OUT)
        else:
            # No reply: the client may not read one mid-body. The application sees the client
            # go away (connection_lost marks the request disconnected).
            logger.info(
                "closed the connection from %s: request body sent nothing for %g s "
                "(request_body_stall_seconds)",
                self._peer(),
                self._body_stall,
            )
        self.transport.close()

    def _peer(self) -> str:
        if self.client is None:
            return "an unknown peer"
        host, port = self.client
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
