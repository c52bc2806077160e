"""The pure ASGI middleware that observes every HTTP request: its id, its metrics, its line.

The request id: the API door makes its own (x-amzn-RequestId, a UUID, what botocore reports
as ResponseMetadata.RequestId), read here from the response; every other response gets one in
X-Request-Id, the name proxies and log pipelines already know (no OCI client reads one, so
nothing binds it to an AWS name): 32 hex digits of 16 random bytes, as nginx's $request_id
(a fifth of the cost of a uuid4 string). The log line carries the same id.

The caller is what the doors leave in the request state (`principal`), read after the app
has answered; the route is Starlette's matched route, read from the scope the same way.
"""

from __future__ import annotations

import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecrd.auth.principals import Principal
from ecrd.observability import access_log
from ecrd.observability.metrics import HttpMetrics, RouteSeries

REQUEST_ID_HEADER = b"x-request-id"
_AWS_REQUEST_ID_HEADER = b"x-amzn-requestid"
_TARGET_HEADER = b"x-amz-target"


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for header_name, value in headers:
        if header_name == name:
            return value
    return None


class ObservedRequests:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        is_api = scope["path"] == "/" and scope["method"] == "POST"
        status = 0
        bytes_in = 0
        bytes_out = 0
        request_id = ""

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            body = message.get("body")
            if body:
                bytes_in += len(body)
            return message

        async def observing_send(message: Message) -> None:
            nonlocal status, bytes_out, request_id
            if message["type"] == "http.response.body":
                body = message.get("body")
                if body:
                    bytes_out += len(body)
            elif message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                if is_api:
                    found = _header(headers, _AWS_REQUEST_ID_HEADER)
                    request_id = found.decode("latin-1") if found else os.urandom(16).hex()
                else:
                    request_id = os.urandom(16).hex()
                    message["headers"] = [*headers, (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, counting_receive, observing_send)
        except BaseException:
            if status == 0:  # the server's error handler answers outside this middleware
                status = 500
            raise
        finally:
            duration = time.perf_counter() - started
            series = self._series(scope, is_api)
            series.record(scope["method"], status, duration)
            if bytes_in:
                self.metrics.bytes_received[series.door].inc(bytes_in)
            if bytes_out:
                self.metrics.bytes_sent[series.door].inc(bytes_out)
            if access_log.logger.isEnabledFor(logging.INFO):
                access_log.write(
                    access_log.AccessEntry(
                        request_id or os.urandom(16).hex(),
                        _principal_of(scope),
                        scope["method"],
                        access_log.loggable_path(
                            scope.get("raw_path") or scope["path"].encode(), scope["query_string"]
                        ),
                        series.door,
                        series.route,
                        status,
                        bytes_in,
                        bytes_out,
                        duration,
                    )
                )

    def _series(self, scope: Scope, is_api: bool) -> RouteSeries:
        if is_api:
            return self.metrics.api_series(_header(scope["headers"], _TARGET_HEADER))
        route = scope.get("route")
        return self.metrics.route_series(getattr(route, "path", None), scope["path"])


def _principal_of(scope: Scope) -> str:
    state = scope.get("state")
    principal = state.get("principal") if state else None
    if isinstance(principal, Principal) and principal.arn is not None:
        return principal.arn
    return "anonymous"
