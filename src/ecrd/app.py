"""create_app(settings): builds and wires everything; nothing happens at import time."""

from __future__ import annotations

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
from ecrd.jobs.catalog import REPLICATION, SCANNING, SIGNING, scheduled_jobs
from ecrd.jobs.runner import JobRunner
from ecrd.observability.health import Readiness, liveness
from ecrd.observability.home import HomePage
from ecrd.observability.metrics import Metrics, MetricsEndpoint, operation_labels
from ecrd.observability.middleware import ObservedRequests
from ecrd.oci.access import Unauthorized, unauthorized
from ecrd.oci.errors import OciError, error_response, oci_error, registry_error
from ecrd.oci.routes import oci_routes
from ecrd.registry.services import RegistryServices, build_services
from ecrd.registry.uploads import BodyInterrupted
from ecrd.settings import Settings
from ecrd.web.gallery import gallery_routes
from ecrd.web.test_hooks import test_hook_routes

_API_VERSION_HEADER = (b"docker-distribution-api-version", b"registry/2.0")
# How long a stopping server waits for a running background job before cancelling it.
SHUTDOWN_GRACE_SECONDS = 10.0
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


def create_app(settings: Settings, migrate: bool = True) -> Starlette:
    """The ASGI application. `migrate` brings the schema up to date at start."""
    services: RegistryServices = build_services(settings)
    aws_services = load_services()
    jobs = scheduled_jobs(services, settings)
    metrics = Metrics(operation_labels(aws_services), [job.name for job in jobs])
    runner = JobRunner(
        services.database,
        jobs,
        metrics.jobs,
        poll_seconds=settings.job_poll_seconds,
        background=services.background,
    )
    # A push a replication rule covers starts the job at once, rather than at its next tick.
    services.manifests.on_replication_queued = lambda: runner.nudge(REPLICATION)
    services.backfills.on_started = lambda: runner.nudge(REPLICATION)
    services.manifests.on_signing_queued = lambda: runner.nudge(SIGNING)
    services.scanner.on_started = lambda: runner.nudge(SCANNING)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await services.database.migrate()
        await services.tokens.start(legacy_signing_secret(settings.data_dir))
        await services.registry_for_host(None)
        await runner.start()
        yield
        # A job that is running gets time to end, and pull-time writes are drained.
        await runner.stop(timeout=SHUTDOWN_GRACE_SECONDS)
        await services.close()

    aws_endpoint = AwsEndpoint(aws_services, operation_tables())
    readiness = Readiness(services.database, services.blob_store)
    metrics_endpoint = MetricsEndpoint(metrics, services.uploads, services.replication)
    app = Starlette(
        routes=[
            Route("/", aws_endpoint.handle, methods=["POST"]),
            # What the operator and a person opening the address see; no auth.
            Route("/", HomePage(settings).answer, methods=["GET"]),
            Route("/healthz", liveness, methods=["GET"]),
            Route("/readyz", readiness.answer, methods=["GET"]),
            Route("/metrics", metrics_endpoint.answer, methods=["GET"]),
            *oci_routes(),
            *gallery_routes(),
            *test_hook_routes(settings),
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
