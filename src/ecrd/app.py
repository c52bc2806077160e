"""create_app(settings): builds and wires everything; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecrd.auth.tokens import legacy_signing_secret
from ecrd.aws.endpoint import AwsEndpoint
from ecrd.aws.model import load_services
from ecrd.aws.operations import operation_tables
from ecrd.errors import RegistryError
from ecrd.observability.health import Readiness, liveness
from ecrd.observability.home import HomePage
from ecrd.observability.metrics import JobMetrics, Metrics, MetricsEndpoint, operation_labels
from ecrd.observability.middleware import ObservedRequests
from ecrd.oci.access import Unauthorized, unauthorized
from ecrd.oci.errors import OciError, error_response, oci_error, registry_error
from ecrd.oci.routes import oci_routes
from ecrd.registry.services import RegistryServices, build_services
from ecrd.registry.uploads import BodyInterrupted
from ecrd.settings import Settings
from ecrd.web.gallery import gallery_routes

_API_VERSION_HEADER = (b"docker-distribution-api-version", b"registry/2.0")
UPLOAD_SWEEP_INTERVAL_SECONDS = 3600
UPLOAD_SWEEP_JOB = "upload_sweep"
BACKGROUND_JOBS = (UPLOAD_SWEEP_JOB,)
logger = logging.getLogger("ecrd")


class RegistryHeaders:
    """Adds the Distribution API version header to every response, as registries do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _API_VERSION_HEADER]
            await send(message)

        await self.app(scope, receive, send_with_header)


async def _body_interrupted(request: Request, error: Exception) -> Response:
    """The client left mid-body: what arrived is kept; nobody is there to read a reply."""
    logger.info("client left during %s %s: %s", request.method, request.url.path, error)
    return error_response(request, 400, "BLOB_UPLOAD_INVALID", "request body ended early")


async def _http_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, HTTPException):
        raise error
    if error.status_code == 405:
        return error_response(request, 405, "UNSUPPORTED", "method not allowed here")
    return error_response(request, error.status_code, "NAME_UNKNOWN", "no such endpoint")


async def _sweep_uploads(services: RegistryServices, expiry_seconds: int, jobs: JobMetrics) -> None:
    """Hourly, drop uploads abandoned for longer than the configured expiry."""
    while True:
        try:
            with jobs.run(UPLOAD_SWEEP_JOB):
                removed = await services.uploads.expire(expiry_seconds)
            if removed:
                logger.info("removed %d abandoned uploads", removed)
        except Exception:  # a failed sweep must not end the loop; the next one retries
            logger.exception("upload sweep failed")
        await asyncio.sleep(UPLOAD_SWEEP_INTERVAL_SECONDS)


def create_app(settings: Settings, migrate: bool = True) -> Starlette:
    """The ASGI application. `migrate` brings the schema up to date at start."""
    services: RegistryServices = build_services(settings)
    aws_services = load_services()
    metrics = Metrics(operation_labels(aws_services), BACKGROUND_JOBS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await services.database.migrate()
        await services.tokens.start(legacy_signing_secret(settings.data_dir))
        await services.registry_for_host(None)
        sweeper = asyncio.create_task(
            _sweep_uploads(services, settings.upload_expiry_seconds, metrics.jobs)
        )
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await services.close()

    aws_endpoint = AwsEndpoint(aws_services, operation_tables())
    readiness = Readiness(services.database, services.blob_store)
    app = Starlette(
        routes=[
            Route("/", aws_endpoint.handle, methods=["POST"]),
            # What the operator and a person opening the address see; no auth.
            Route("/", HomePage(settings).answer, methods=["GET"]),
            Route("/healthz", liveness, methods=["GET"]),
            Route("/readyz", readiness.answer, methods=["GET"]),
            Route("/metrics", MetricsEndpoint(metrics, services.uploads).answer, methods=["GET"]),
            *oci_routes(),
            *gallery_routes(),
        ],
        lifespan=lifespan,
        exception_handlers={
            RegistryError: registry_error,
            Unauthorized: unauthorized,
            OciError: oci_error,
            BodyInterrupted: _body_interrupted,
            HTTPException: _http_error,
        },
    )
    app.state.services = services
    app.state.settings = settings
    app.add_middleware(RegistryHeaders)
    # Outermost (added last): it sees the final status, headers and bytes of every answer.
    app.add_middleware(ObservedRequests, metrics=metrics.http)
    return app
