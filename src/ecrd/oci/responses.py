"""A lean streaming response for blob bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class StreamResponse(Response):
    """Sends an async iterator of chunks; Content-Length comes from the caller's headers.

    Unlike Starlette's StreamingResponse it runs no disconnect watcher task per response: a
    send to a client that went away raises, which ends the stream and closes the source.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
    ) -> None:
        self.chunks = chunks
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            close = getattr(self.chunks, "aclose", None)
            if close is not None:
                await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
