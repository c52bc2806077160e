"""Reading what an operator reads: a /metrics scrape and the server's log lines."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import EcrdServer

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def scrape(server: EcrdServer) -> Samples:
    """Every sample of one GET /metrics (anonymous, as Prometheus scrapes), parsed with the
    client library's own parser."""
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


# A request is counted once its last byte is sent, so a scrape may come just before that.
SCRAPE_WAIT_SECONDS = 10


def scrape_when(server: EcrdServer, condition: Callable[[Samples], bool]) -> Samples:
    """Scrapes until `condition` holds of one (at most SCRAPE_WAIT_SECONDS); the last one."""
    deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
    while True:
        samples = scrape(server)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not there yet (a counter that never moved)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def label_values(samples: Samples) -> set[str]:
    return {label_value for _, labels in samples for _, label_value in labels}


def access_lines(server: EcrdServer) -> list[str]:
    """The text access-log lines the server wrote so far."""
    log = server.log_path.read_text(errors="replace")
    return [line for line in log.splitlines() if " INFO ecrd.access: " in line]


_FIELD = re.compile(r"(\w+)=(\S*)")


def fields_of(line: str) -> Mapping[str, str]:
    """The key=value fields of a text access-log line."""
    return dict(_FIELD.findall(line.partition(" ecrd.access: ")[2]))


# The line is written once the last byte is sent, so it may come just after the response.
LINE_WAIT_SECONDS = 10


def wait_for_lines(server: EcrdServer, text: str) -> list[str]:
    """The server's log lines holding `text`, waiting (boundedly) for the first to appear."""
    deadline = time.monotonic() + LINE_WAIT_SECONDS
    while True:
        lines = server.log_path.read_text(errors="replace").splitlines()
        found = [line for line in lines if text in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def access_line_of(server: EcrdServer, request_id: str) -> Mapping[str, str]:
    """The fields of the one text access-log line of the request `request_id`."""
    found = [line for line in wait_for_lines(server, request_id) if " ecrd.access: " in line]
    assert len(found) == 1, f"{len(found)} access lines for request {request_id}"
    return fields_of(found[0])
