"""GET /metrics: counters that move by exactly the requests made, with bounded labels."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EcrdServer
from tests.observability.helpers import (
    label_values,
    moved,
    scrape,
    scrape_when,
    value,
    wait_for_lines,
)
from tests.oci.helpers import OCI_MANIFEST, push_image
from tests.test_server import tls_client_hello

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
API_HEADERS = {"Content-Type": "application/x-amz-json-1.1"}
MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
REQUESTS = "ecrd_http_requests_total"
DURATIONS = "ecrd_http_request_duration_seconds_count"
RECEIVED = "ecrd_http_request_bytes_total"
SENT = "ecrd_http_response_bytes_total"
JOB_RUNS = "ecrd_background_job_runs_total"
START_WAIT_SECONDS = 60


def api_call(client: httpx.Client, operation: str, body: bytes = b"{}") -> httpx.Response:
    headers = {**API_HEADERS, "X-Amz-Target": f"{ECR_TARGET}.{operation}"}
    return client.post("/", content=body, headers=headers)


def test_metrics_are_prometheus_text_without_auth(server: EcrdServer) -> None:
    # when Prometheus scrapes, without credentials
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    # then it gets the text exposition format, which the client library's parser reads
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = scrape(server)
    assert value(samples, "ecrd_build_info", version="0.1.0") == 1
    assert ("ecrd_uploads_in_progress", ()) in samples


def test_requests_move_their_counters_by_exactly_their_number(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given a pushed image
    manifest, _ = push_image(client, repository_name, "v1")
    before = scrape(server)

    # when it is pulled three times, an unknown tag is asked for, and one API call is made
    pulls = [
        client.get(f"/v2/{repository_name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        for _ in range(3)
    ]
    missing = client.get(
        f"/v2/{repository_name}/manifests/absent", headers={"Accept": OCI_MANIFEST}
    )
    body = b'{"maxResults": 1}'
    api = api_call(client, "DescribeRepositories", body)
    assert [pull.status_code for pull in pulls] == [200, 200, 200]
    assert [pull.content for pull in pulls] == [manifest] * 3
    assert (missing.status_code, api.status_code) == (404, 200)

    # then the counters moved by exactly those requests, labelled by route template and by
    # operation
    after = scrape_when(
        server,
        lambda samples: (
            moved(before, samples, DURATIONS, door="api", route="ecr:DescribeRepositories") >= 1
        ),
    )
    pull_labels = {"door": "v2", "route": MANIFEST_ROUTE, "method": "GET"}
    assert moved(before, after, REQUESTS, **pull_labels, status="200") == 3
    assert moved(before, after, REQUESTS, **pull_labels, status="404") == 1
    api_labels = {"door": "api", "route": "ecr:DescribeRepositories", "method": "POST"}
    assert moved(before, after, REQUESTS, **api_labels, status="200") == 1
    # and the histograms counted the same requests
    assert moved(before, after, DURATIONS, door="v2", route=MANIFEST_ROUTE) == 4
    assert moved(before, after, DURATIONS, door="api", route="ecr:DescribeRepositories") == 1
    # and the bytes are the bodies' bytes, by door
    assert moved(before, after, SENT, door="v2") == 3 * len(manifest) + len(missing.content)
    assert moved(before, after, RECEIVED, door="v2") == 0
    assert moved(before, after, RECEIVED, door="api") == len(body)
    assert moved(before, after, SENT, door="api") == len(api.content)
    # and no label holds the concrete repository name or tag
    assert [label for label in label_values(after) if repository_name in label] == []
    assert "absent" not in label_values(after)


def test_unknown_operations_and_paths_share_one_label_each(
    server: EcrdServer, client: httpx.Client
) -> None:
    # given requests naming things no model and no route has, each new
    made_up = uuid.uuid4().hex
    before = scrape(server)

    # when they are sent
    unknown_operation = api_call(client, f"Made{made_up}")
    unmatched_v2 = client.get(f"/v2/{made_up}")
    unmatched_web = httpx.get(f"{server.url}/{made_up}", timeout=30)
    assert (unknown_operation.status_code, unmatched_v2.status_code) == (400, 404)
    assert unmatched_web.status_code == 404

    # then each is counted under one shared label, never under what the client sent
    after = scrape_when(
        server,
        lambda samples: moved(before, samples, DURATIONS, door="web", route="unmatched") >= 1,
    )
    labels = {"method": "POST", "status": "400"}
    assert moved(before, after, REQUESTS, door="api", route="unknown", **labels) == 1
    labels = {"method": "GET", "status": "404"}
    assert moved(before, after, REQUESTS, door="v2", route="unmatched", **labels) == 1
    assert moved(before, after, REQUESTS, door="web", route="unmatched", **labels) == 1
    assert [label for label in label_values(after) if made_up in label] == []


def test_ecr_public_operations_are_labelled_with_their_service(server: EcrdServer) -> None:
    # given a scrape; when an ECR Public call is made
    before = scrape(server)
    server.ecr("ecr-public").describe_registries()
    # then it is counted as ecr-public:DescribeRegistries
    after = scrape_when(
        server,
        lambda samples: (
            moved(before, samples, DURATIONS, door="api", route="ecr-public:DescribeRegistries")
            >= 1
        ),
    )
    labels = {"door": "api", "route": "ecr-public:DescribeRegistries", "method": "POST"}
    assert moved(before, after, REQUESTS, **labels, status="200") == 1


def test_uploads_in_progress_counts_open_uploads(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given the number of open uploads
    before = value(scrape(server), "ecrd_uploads_in_progress")
    # when an upload is begun, it counts
    started = client.post(f"/v2/{repository_name}/blobs/uploads/")
    assert started.status_code == 202
    assert value(scrape(server), "ecrd_uploads_in_progress") == before + 1
    # and when it is cancelled, it no longer does
    assert client.delete(started.headers["Location"]).status_code == 204
    assert value(scrape(server), "ecrd_uploads_in_progress") == before


def test_the_upload_sweep_is_counted_as_a_background_job(own_server: EcrdServer) -> None:
    # given a server that has just started on a new store (its sweep runs at once, then
    # hourly)
    def swept(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        return value(samples, JOB_RUNS, job="upload_sweep", outcome="success") >= 1

    samples = scrape_when(own_server, swept)
    # then one successful run of the job is counted, with its duration, and no failure
    assert value(samples, JOB_RUNS, job="upload_sweep", outcome="success") == 1
    assert value(samples, JOB_RUNS, job="upload_sweep", outcome="failure") == 0
    assert value(samples, "ecrd_background_job_duration_seconds_count", job="upload_sweep") == 1


# Only anonymous endpoints are used, so the server makes its own root key.
_NO_BOOTSTRAP = {"ECRD_BOOTSTRAP_ACCESS_KEY_ID": "", "ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": ""}


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path / "data", ["--workers", "2"], environment=_NO_BOOTSTRAP)
    instance.start()
    yield instance
    instance.stop()


def test_two_workers_answer_the_same_sums(two_workers: EcrdServer) -> None:
    # given a server of two worker processes on a new store, whose first sweep one of them ran
    # (the job's lease lets one process take each run)
    deadline = time.monotonic() + START_WAIT_SECONDS
    samples = scrape(two_workers)
    while value(samples, JOB_RUNS, job="upload_sweep", outcome="success") < 1:
        assert time.monotonic() < deadline, "no worker swept"
        time.sleep(0.2)
        samples = scrape(two_workers)
    folder = Path(re.findall(r"keep their metrics in (\S+)", two_workers.log_path.read_text())[0])
    assert folder.is_dir()
    before = value(samples, REQUESTS, door="web", route="/healthz", method="GET", status="200")

    # when 20 requests come, each on a connection of its own (any worker may take each)
    for _ in range(20):
        assert httpx.get(f"{two_workers.url}/healthz", timeout=30).status_code == 200

    # then every scrape, whichever worker answers it, counts all of them and the one sweep
    labels = {"door": "web", "route": "/healthz", "method": "GET", "status": "200"}
    scrape_when(two_workers, lambda samples: value(samples, REQUESTS, **labels) >= before + 20)
    for _ in range(6):
        samples = scrape(two_workers)
        assert value(samples, REQUESTS, **labels) == before + 20
        assert value(samples, JOB_RUNS, job="upload_sweep", outcome="success") == 1

    # and the workers log as the single process does: their lines in the same format, a TLS
    # probe not as a warning
    with socket.create_connection(("127.0.0.1", two_workers.port), timeout=10) as connection:
        connection.sendall(tls_client_hello())
        assert connection.recv(64).startswith(b"HTTP/1.1 400")
    assert wait_for_lines(two_workers, "path=/healthz")[0].split()[1:3] == ["INFO", "ecrd.access:"]

    # and the folder of this start is removed when the server stops
    two_workers.stop()
    assert not folder.exists()
    assert "Invalid HTTP request" not in two_workers.log_path.read_text()
