"""GET /healthz and GET /readyz: small JSON, no auth, 503 naming the store that fails."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    EcrdServer,
    _postgres_statement,
    new_postgres_database,
    require_postgres,
)

READY = {"status": "ready", "checks": {"metadata": "ok", "blobs": "ok"}}


def test_a_running_server_is_alive_and_ready(server: EcrdServer) -> None:
    # when a load balancer asks, without credentials
    alive = httpx.get(f"{server.url}/healthz", timeout=30)
    ready = httpx.get(f"{server.url}/readyz", timeout=30)
    # then both answer 200 in JSON
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, READY)
    assert ready.headers["content-type"] == "application/json"


@pytest.mark.metadata_independent
def test_readiness_fails_naming_the_blob_store_when_its_folder_is_gone(
    own_server: EcrdServer,
) -> None:
    # given a ready server whose blob folder is then replaced by a file (a lost mount)
    assert httpx.get(f"{own_server.url}/readyz", timeout=30).status_code == 200
    blobs = own_server.data_dir / "blobs"
    moved_away = own_server.data_dir / "blobs-away"
    blobs.rename(moved_away)
    blobs.write_bytes(b"not a folder")
    try:
        # when readiness is asked
        unready = httpx.get(f"{own_server.url}/readyz", timeout=30)
        alive = httpx.get(f"{own_server.url}/healthz", timeout=30)
    finally:
        blobs.unlink()
        moved_away.rename(blobs)
    # then it is 503 naming the failing check, while the process is still alive
    assert unready.status_code == 503
    assert unready.json() == {
        "status": "not ready",
        "checks": {"metadata": "ok", "blobs": "failed: NotADirectoryError"},
    }
    assert alive.status_code == 200
    # and the failure's details are in the server's log
    assert "readiness: the blobs check failed" in own_server.log_path.read_text()
    # and once the folder is back, the server is ready again
    assert httpx.get(f"{own_server.url}/readyz", timeout=30).json() == READY


@pytest.mark.metadata_independent
def test_readiness_fails_naming_the_metadata_store_when_its_database_is_dropped(
    tmp_path: Path,
) -> None:
    require_postgres()
    # given a ready server on a PostgreSQL database of its own
    url = new_postgres_database()
    instance = EcrdServer(tmp_path / "data", ["--database-url", url])
    instance.start()
    try:
        assert httpx.get(f"{instance.url}/readyz", timeout=30).json() == READY
        # when the database is dropped under it
        _postgres_statement(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        unready = httpx.get(f"{instance.url}/readyz", timeout=30)
        alive = httpx.get(f"{instance.url}/healthz", timeout=30)
    finally:
        instance.stop()
    # then readiness is 503 naming the metadata store, and the process is alive
    assert unready.status_code == 503
    body = unready.json()
    assert body["status"] == "not ready", body
    assert body["checks"]["blobs"] == "ok"
    assert body["checks"]["metadata"].startswith("failed: "), body
    assert alive.status_code == 200
