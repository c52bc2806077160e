"""Start and stop the registries under test, and the HTTP helpers both benchmarks share.

Every server gets its own free loopback port and temporary data folder. Only the processes
started here are ended, by their PID; every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

ROOT = Path(__file__).resolve().parent.parent
ECRD = ROOT / ".venv" / "bin" / "ecrd"
DISTRIBUTION = Path("/usr/bin/docker-registry")
STARTUP_SECONDS = 60.0
STOP_SECONDS = 15.0
CHUNK = 1024 * 1024
REGION = "us-east-1"

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def require_free_space(path: Path, needed: int, what: str) -> None:
    available = free_bytes(path)
    if available < needed:
        raise SystemExit(
            f"not enough disk space for {what}: {available / 2**30:.1f} GiB free under "
            f"{path}, {needed / 2**30:.1f} GiB needed"
        )


@dataclass
class AccessKey:
    access_key_id: str
    secret_access_key: str


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    workdir: Path
    # Extra environment variables for the server process.
    env: dict[str, str] = field(default_factory=dict)
    # A key to log in with once the server is up (ecrd); None for a server without auth.
    access_key: AccessKey | None = None
    # The Authorization header value every request sends; set by the login.
    authorization: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
            )
        self._wait_ready()
        if self.access_key is not None:
            self.authorization = registry_login(self.base, self.access_key)
            # The login must open /v2/, or every measurement would time 401s.
            status = httpx.get(
                f"{self.base}/v2/", headers={"Authorization": self.authorization}, timeout=10
            ).status_code
            if status != 200:
                raise RuntimeError(f"{self.name}: /v2/ with the login gives {status}")

    def _wait_ready(self) -> None:
        """Until /v2/ answers: 200, or 401 from a server that wants a login."""
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/v2/", timeout=2).status_code in (200, 401):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {STARTUP_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """End the one process started here, by its PID: TERM, then KILL after a bound."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process and its children have used so far."""
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` and its children have used so far."""
    import psutil

    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def registry_login(base: str, key: AccessKey) -> str:
    """`docker login`'s Authorization header: GetAuthorizationToken through ecrd's ECR API,
    signed with `key`, gives base64("AWS:<token>") for Basic auth."""
    import boto3
    from botocore.config import Config

    ecr = boto3.client(
        "ecr",
        endpoint_url=base,
        region_name=REGION,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(connect_timeout=10, read_timeout=30, retries={"total_max_attempts": 1}),
    )
    data = ecr.get_authorization_token()["authorizationData"][0]
    return f"Basic {data['authorizationToken']}"


def ecrd_server(
    workdir: Path,
    environment: dict[str, str] | None = None,
    access_key: AccessKey | None = None,
) -> Server:
    """ecrd with authentication on (IAM mode), started with a fresh root key to log in with.

    `environment` adds (or overrides) ECRD_* and other variables, such as another metadata or
    blob store; `access_key` is the root key to use instead of a fresh one, so that several
    processes over one database bootstrap the same key.
    """
    port = free_port()
    data = workdir / "ecrd-data"
    command = [
        str(ECRD),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--log-level",
        "error",
    ]
    key = access_key or AccessKey(
        "AKIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        secrets.token_hex(20),
    )
    env = {
        "ECRD_AUTH_MODE": "iam",
        "ECRD_REGION": REGION,
        "ECRD_BOOTSTRAP_ACCESS_KEY_ID": key.access_key_id,
        "ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": key.secret_access_key,
        **(environment or {}),
    }
    return Server("ecrd", command, port, workdir, env=env, access_key=key)


def distribution_server(workdir: Path) -> Server:
    port = free_port()
    data = workdir / "distribution-data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=data, port=port))
    return Server("distribution", [str(DISTRIBUTION), "serve", str(config)], port, workdir)


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    """Start the servers; stop them (by PID) however the block ends, SIGTERM included."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def new_client(server: Server, concurrency: int = 8) -> httpx.AsyncClient:
    """A client for `server`, sending its login (if any) on every request."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": server.authorization} if server.authorization else None
    return httpx.AsyncClient(
        timeout=httpx.Timeout(600.0, connect=10.0), limits=limits, headers=headers
    )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _absolute(base: str, location: str) -> str:
    return location if location.startswith("http") else base + location


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


async def start_upload(client: httpx.AsyncClient, base: str, repo: str) -> str:
    response = await client.post(f"{base}/v2/{repo}/blobs/uploads/")
    if response.status_code != 202:
        raise RuntimeError(f"POST upload: {response.status_code} {response.text[:300]}")
    return _absolute(base, response.headers["location"])


async def put_blob(
    client: httpx.AsyncClient,
    base: str,
    repo: str,
    digest: str,
    body: bytes | AsyncIterator[bytes],
    size: int,
) -> None:
    """POST an upload, then PUT the whole body with the digest: the same two requests to both."""
    location = await start_upload(client, base, repo)
    response = await client.put(
        _with_digest(location, digest),
        content=body,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    if response.status_code != 201:
        raise RuntimeError(f"PUT blob: {response.status_code} {response.text[:300]}")


async def patch_then_put(
    client: httpx.AsyncClient,
    base: str,
    repo: str,
    body: AsyncIterator[bytes],
    size: int,
    digest_of_body: Callable[[], str],
) -> str:
    """POST, one PATCH carrying the whole streamed body, then an empty PUT with the digest,
    which `digest_of_body()` gives once the body has been sent (hashed on the way out)."""
    location = await start_upload(client, base, repo)
    response = await client.patch(
        location,
        content=body,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "Content-Range": f"0-{size - 1}",
        },
    )
    if response.status_code != 202:
        raise RuntimeError(f"PATCH blob: {response.status_code} {response.text[:300]}")
    location = _absolute(base, response.headers["location"])
    digest = digest_of_body()
    response = await client.put(_with_digest(location, digest), headers={"Content-Length": "0"})
    if response.status_code != 201:
        raise RuntimeError(f"PUT blob: {response.status_code} {response.text[:300]}")
    return digest


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


async def get_blob_to_devnull(
    client: httpx.AsyncClient,
    base: str,
    repo: str,
    digest: str,
    size: int,
    hasher: Hasher | None = None,
) -> int:
    """GET a blob, writing it to /dev/null as it arrives; check the size (and hash, if given)."""
    received = 0
    async with client.stream("GET", f"{base}/v2/{repo}/blobs/{digest}") as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"GET blob: {response.status_code} {response.text[:300]}")
        with open(os.devnull, "wb") as sink:
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                sink.write(chunk)
    if received != size:
        raise RuntimeError(f"GET blob {digest}: {received} bytes, expected {size}")
    return received


async def file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    """A file on disk in 1 MiB pieces, read as the body is sent (never held whole)."""
    sent = 0
    with open(path, "rb") as file:
        while sent < size:
            chunk = file.read(min(CHUNK, size - sent))
            if not chunk:
                break
            sent += len(chunk)
            yield chunk
            await asyncio.sleep(0)


def install_uvloop() -> None:
    """The same event loop for the client against both servers; uvloop when it is there."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def hammer(
    server: Server, path: str, method: str, connections: int, seconds: float, accept: str
) -> tuple[float, int, int, int]:
    """A minimal keep-alive HTTP/1.1 load loop for requests wrk 4.1 cannot time (HEAD: its
    parser waits for a body after a HEAD response with a Content-Length).

    Returns (completed requests per second, completed, responses not 2xx, connection errors).
    """
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    login = f"Authorization: {server.authorization}\r\n" if server.authorization else ""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n{login}\r\n"
    ).encode()
    completed = 0
    bad_status = 0
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal completed, bad_status, errors
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            errors += 1
            return
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not 200 <= int(head[9:12]) < 300:
                    bad_status += 1
                if method != "HEAD":
                    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    if match is None:
                        raise RuntimeError("response without Content-Length")
                    await reader.readexactly(int(match.group(1)))
                completed += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(connections))), timeout=seconds + 30
    )
    return completed / (time.monotonic() - started), completed, bad_status, errors
