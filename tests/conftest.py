"""Shared fixtures: a real ecrd server process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """The environment without ECRD_* settings, so a developer's shell cannot leak in."""
    return {key: value for key, value in os.environ.items() if not key.startswith("ECRD_")}


class EcrdServer:
    """An `ecrd serve` child process; `host` is what clients put in image references."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if "--tls-cert" in self.extra_args else "http"
        return f"{scheme}://{self.host}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("server is not running")
        return self.process.pid

    def start(self) -> None:
        command = [
            sys.executable, "-m", "ecrd", "serve",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=clean_environment()
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ecrd exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/v2/", timeout=1, verify=False)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"ecrd did not answer in {START_TIMEOUT_SECONDS}s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """One server for the session; tests keep apart by using their own repository names."""
    instance = EcrdServer(tmp_path_factory.mktemp("ecrd") / "data")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EcrdServer]:
    """A server of the test's own, for tests that restart it or need an empty store."""
    instance = EcrdServer(tmp_path / "data")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def repository_name() -> str:
    """A repository name no other test uses."""
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(server: EcrdServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
