"""uvicorn's httptools protocol with a bound on the request head.

httptools buffers a request line and headers of any length before it hands them over, so a
client could make the server hold megabytes per connection. Here the bytes fed while a head
is incomplete are counted, and a head longer than MAX_HEAD_BYTES gets 431 and a closed
connection. Bodies are bounded by each endpoint, as they are read.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Large enough for any real client (a registry token is under 1 KiB); Distribution and nginx
# use similar bounds.
MAX_HEAD_BYTES = 64 * 1024
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 27\r\n"
    b"connection: close\r\n\r\n"
    b"request head exceeds 64 KiB"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True
        self._head_bytes = 0
        self._completed = 0

    def data_received(self, data: bytes) -> None:
        counting = self._head_pending
        completed = self._completed
        super().data_received(data)
        # Only a read that left the same head still unfinished counts: one that finished a
        # request (whose body may be most of it) and began the next does not.
        if counting and self._head_pending and self._completed == completed:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_pending = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_pending = True
        self._head_bytes = 0
        self._completed += 1
