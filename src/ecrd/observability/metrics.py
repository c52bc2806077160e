"""Prometheus metrics, exposed in the text format at GET /metrics (no auth: restrict it at the
proxy). Every label value comes from a bounded set: a route template or an API operation name,
never a concrete path or repository name.

    ecrd_http_requests_total{door, route, method, status}   door: api, v2 or web
    ecrd_http_request_duration_seconds{door, route}         histogram, until the last byte sent
    ecrd_http_request_bytes_total{door}                     request body bytes received
    ecrd_http_response_bytes_total{door}                    response body bytes sent
    ecrd_uploads_in_progress                                open upload rows, counted per scrape
    ecrd_replications_queued                                images waiting for replication
    ecrd_replication_lag_seconds                            age of the oldest of them (0: none)
    ecrd_background_job_runs_total{job, outcome}            outcome: success or failure
    ecrd_background_job_duration_seconds{job}               histogram
    ecrd_background_job_items_total{job, item}              what runs did: the counts a job
                                                            returns (garbage_collection: blobs,
                                                            blob_bytes, links, ...)
    ecrd_build_info{version}                                always 1

`route` is the route template (`/v2/{name}/manifests/{reference}`) on the v2 and web doors, the
operation (`ecr:DescribeRepositories`, `ecr-public:CreateRepository`) on the API door,
`unknown` for a target no model has and `unmatched` for a path no route has.

With several workers (uvicorn processes) each process writes its values to files in a folder
of its own start (prometheus-client's multiprocess mode, `worker_metrics_folder`), and a
scrape answered by any worker sums them all. The process_* and python_* collectors of the
client library are per process, so they are only served by a single-process server.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from ecrd import __version__
from ecrd.aws.model import AwsService
from ecrd.registry.replication import ReplicationService
from ecrd.registry.uploads import UploadService

# prometheus-client reads this variable when it is imported: it must be set before then.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# What generate_latest writes: the classic text format every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN_OPERATION = "unknown"
UNMATCHED_ROUTE = "unmatched"
# A manifest GET takes about a millisecond, a large blob upload minutes.
HTTP_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
)  # fmt: skip
JOB_BUCKETS = (0.01, 0.1, 1, 10, 60, 300, 1800, 3600)
# Methods outside this set (the parser admits a few dozen) share one label value.
_METHODS = {name: name for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_CONVERTER = re.compile(r"\{(\w+):\w+\}")
logger = logging.getLogger("ecrd")


def operation_labels(aws_services: dict[str, AwsService]) -> dict[bytes, str]:
    """Each X-Amz-Target the models have, as sent, and its label: the IAM action's name."""
    return {
        f"{prefix}.{operation}".encode(): f"{service.model.signing_name}:{operation}"
        for prefix, service in aws_services.items()
        for operation in service.model.operation_names
    }


def route_label(path_template: str) -> str:
    """`/v2/{name:path}/tags/list` as the label `/v2/{name}/tags/list`."""
    return _CONVERTER.sub(r"{\1}", path_template)


def door_of(path: str) -> str:
    """The door a non-API path belongs to: the registry's (/v2/ and its token) or the web's."""
    return "v2" if path.startswith("/v2") or path == "/token" else "web"


class RouteSeries:
    """The series of one door and route: the label children are made once and reused by every
    request after, so recording a request is a few dictionary look-ups and increments."""

    __slots__ = ("door", "route", "_requests", "_duration", "_by_method")

    def __init__(self, requests: Counter, durations: Histogram, door: str, route: str) -> None:
        self.door = door
        self.route = route
        self._requests = requests
        self._duration = durations.labels(door, route)
        # method label -> status -> counter child
        self._by_method: dict[str, dict[int, Counter]] = {}

    def record(self, method: str, status: int, duration_seconds: float) -> None:
        method_label = _METHODS.get(method, "other")
        by_status = self._by_method.get(method_label)
        if by_status is None:
            by_status = self._by_method[method_label] = {}
        counter = by_status.get(status)
        if counter is None:
            counter = by_status[status] = self._requests.labels(
                self.door, self.route, method_label, str(status)
            )
        counter.inc()
        self._duration.observe(duration_seconds)


class HttpMetrics:
    """Request counts, durations and bytes, by door and route or operation."""

    def __init__(self, registry: CollectorRegistry, operations: dict[bytes, str]) -> None:
        self._requests = Counter(
            "ecrd_http_requests",
            "HTTP requests answered, by door, route or API operation, method and status.",
            ("door", "route", "method", "status"),
            registry=registry,
        )
        self._durations = Histogram(
            "ecrd_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte, by door and route.",
            ("door", "route"),
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        received = Counter(
            "ecrd_http_request_bytes",
            "Request body bytes received, by door.",
            ("door",),
            registry=registry,
        )
        sent = Counter(
            "ecrd_http_response_bytes",
            "Response body bytes sent, by door.",
            ("door",),
            registry=registry,
        )
        doors = ("api", "v2", "web")
        self.bytes_received = {door: received.labels(door) for door in doors}
        self.bytes_sent = {door: sent.labels(door) for door in doors}
        # X-Amz-Target as sent ("AmazonEC2ContainerRegistry_V20150921.PutImage") -> label
        self._operations = operations
        # Series are made on first use, so only what was asked for shows in a scrape.
        self._api: dict[bytes, RouteSeries] = {}
        self._routes: dict[str, RouteSeries] = {}
        self._others: dict[tuple[str, str], RouteSeries] = {}

    def _series(self, door: str, route: str) -> RouteSeries:
        return RouteSeries(self._requests, self._durations, door, route)

    def _other(self, door: str, route: str) -> RouteSeries:
        """The one series of the door's unknown operations or unmatched paths."""
        series = self._others.get((door, route))
        if series is None:
            series = self._others[(door, route)] = self._series(door, route)
        return series

    def api_series(self, target: bytes | None) -> RouteSeries:
        """The series of an API call by its X-Amz-Target; one shared series for any target
        the models do not have, so a client cannot make new series."""
        if target is not None:
            series = self._api.get(target)
            if series is not None:
                return series
            operation = self._operations.get(target)
            if operation is not None:
                series = self._api[target] = self._series("api", operation)
                return series
        return self._other("api", UNKNOWN_OPERATION)

    def route_series(self, path_template: str | None, path: str) -> RouteSeries:
        """The series of the route that answered (its template as Starlette holds it), or of
        the door's unmatched requests."""
        if path_template is None:
            return self._other(door_of(path), UNMATCHED_ROUTE)
        series = self._routes.get(path_template)
        if series is None:
            series = self._routes[path_template] = self._series(
                door_of(path_template), route_label(path_template)
            )
        return series


class JobRun:
    """Times one run of a background job and counts its outcome; a cancelled run (the server
    stopping) is not a run."""

    __slots__ = ("_jobs", "_job", "_started")

    def __init__(self, jobs: JobMetrics, job: str) -> None:
        self._jobs = jobs
        self._job = job
        self._started = 0.0

    def __enter__(self) -> JobRun:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, Exception):
            return
        outcome = "success" if error is None else "failure"
        self._jobs.record(self._job, outcome, time.perf_counter() - self._started)


class JobMetrics:
    """Runs and durations of background jobs: `with jobs.run("upload_sweep"): ...`."""

    def __init__(self, registry: CollectorRegistry, jobs: Iterable[str] = ()) -> None:
        self._runs = Counter(
            "ecrd_background_job_runs",
            "Runs of background jobs, by job and outcome (success or failure).",
            ("job", "outcome"),
            registry=registry,
        )
        self._durations = Histogram(
            "ecrd_background_job_duration_seconds",
            "How long background job runs take, by job.",
            ("job",),
            registry=registry,
            buckets=JOB_BUCKETS,
        )
        self._items = Counter(
            "ecrd_background_job_items",
            "What background job runs did, by job and count: the counts each run returns "
            "(garbage_collection: blobs, blob_bytes, links; upload_sweep: removed, ...).",
            ("job", "item"),
            registry=registry,
        )
        for job in jobs:  # series at 0 from the start, so "no run yet" can be alerted on
            for outcome in ("success", "failure"):
                self._runs.labels(job, outcome)

    def run(self, job: str) -> JobRun:
        return JobRun(self, job)

    def record(self, job: str, outcome: str, duration_seconds: float) -> None:
        self._runs.labels(job, outcome).inc()
        self._durations.labels(job).observe(duration_seconds)

    def count(self, job: str, counts: Mapping[str, int]) -> None:
        """Add a successful run's counts. Their names are fixed in each job's code, so the
        label set stays bounded."""
        for item, value in counts.items():
            if value > 0:
                self._items.labels(job, item).inc(value)


class _ScrapeTimeValues(Collector):
    """Values read when a scrape comes: the same from whichever worker answers it."""

    def __init__(
        self, uploads_in_progress: int | None, replication_backlog: tuple[int, float] | None
    ) -> None:
        self._uploads_in_progress = uploads_in_progress
        self._replication_backlog = replication_backlog

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("ecrd_build_info", "The running ecrd.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if self._uploads_in_progress is not None:
            yield GaugeMetricFamily(
                "ecrd_uploads_in_progress",
                "Uploads begun and neither finished, cancelled nor expired (all registries).",
                value=self._uploads_in_progress,
            )
        if self._replication_backlog is not None:
            queued, oldest_seconds = self._replication_backlog
            yield GaugeMetricFamily(
                "ecrd_replications_queued",
                "Images queued for replication to a destination and not replicated yet.",
                value=queued,
            )
            yield GaugeMetricFamily(
                "ecrd_replication_lag_seconds",
                "How long the oldest queued replication has waited (0 when none waits).",
                value=oldest_seconds,
            )


class Metrics:
    """All of ecrd's metrics, made by create_app (so several apps in one process each have
    their own) and rendered by `exposition`."""

    def __init__(self, operations: dict[bytes, str], jobs: Iterable[str] = ()) -> None:
        self._multiprocess_folder = os.environ.get(MULTIPROCESS_VARIABLE) or None
        # The *_created series would double the series count for no use on a dashboard.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._registry = CollectorRegistry()
        self.http = HttpMetrics(self._registry, operations)
        self.jobs = JobMetrics(self._registry, jobs)
        if self._multiprocess_folder is None:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self._registry.register(collector)

    def exposition(
        self,
        uploads_in_progress: int | None,
        replication_backlog: tuple[int, float] | None = None,
    ) -> bytes:
        """The text exposition of every metric (of every worker, with several)."""
        if self._multiprocess_folder is None:
            source = self._registry
        else:
            source = CollectorRegistry()
            MultiProcessCollector(source, path=self._multiprocess_folder)  # type: ignore[no-untyped-call]
        scraped = CollectorRegistry()
        scraped.register(_ScrapeTimeValues(uploads_in_progress, replication_backlog))
        return generate_latest(source) + generate_latest(scraped)


class MetricsEndpoint:
    """GET /metrics. Open uploads (and the replication queue) are counted in the metadata store
    at scrape time: the rows
    are shared by every worker (and every server on the same store), so any worker answers
    the true number, uploads begun before a restart or expired by another process included;
    one indexed COUNT per scrape costs nothing next to the requests."""

    def __init__(
        self,
        metrics: Metrics,
        uploads: UploadService,
        replication: ReplicationService | None = None,
    ) -> None:
        self._metrics = metrics
        self._uploads = uploads
        self._replication = replication

    async def answer(self, request: Request) -> Response:
        try:
            uploads_in_progress: int | None = await self._uploads.open_count()
        except Exception:  # metrics matter most when the store fails: serve the rest
            logger.warning("metrics: cannot count open uploads", exc_info=True)
            uploads_in_progress = None
        backlog = None
        if self._replication is not None:
            try:
                backlog = await self._replication.backlog()
            except Exception:
                logger.warning("metrics: cannot read the replication queue", exc_info=True)
        body = self._metrics.exposition(uploads_in_progress, backlog)
        return Response(body, media_type=CONTENT_TYPE)


@contextmanager
def worker_metrics_folder() -> Iterator[Path]:
    """A fresh folder where the worker processes of this start keep their metrics, named in
    the environment they inherit (set before they import prometheus-client), removed at exit
    so no value of an earlier start is ever summed in."""
    folder = Path(tempfile.mkdtemp(prefix="ecrd-metrics-"))
    previous = os.environ.get(MULTIPROCESS_VARIABLE)
    os.environ[MULTIPROCESS_VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_VARIABLE, None)
        else:
            os.environ[MULTIPROCESS_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)
