"""Shared fixtures: a real ecrd server process on a free loopback port.

`pytest --metadata=postgresql` runs every server on the PostgreSQL at 127.0.0.1:5432 (a
database of its own, dropped at the end of the session) instead of SQLite in its data folder;
scripts/test runs the suite both ways. Under CI (`CI=true`) a PostgreSQL that does not answer
fails the run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from ecrd.auth.tokens import TokenIssuer
from ecrd.sealing import Keyring
from tests.s3_server import S3Server, multipart_uploads, object_keys

# Generous: with the two test passes at once on two cores, a start can take several seconds.
START_TIMEOUT_SECONDS = 60
POSTGRES_SERVER = "postgres@127.0.0.1:5432"
POSTGRES_SERVER_URL = f"postgresql+asyncpg://{POSTGRES_SERVER}"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
# The default account's root key: every test server starts with it (ECRD_BOOTSTRAP_*).
ROOT_ACCESS_KEY_ID = "AKIAECRDTESTROOT0000"
ROOT_SECRET_ACCESS_KEY = "ecrdTestRootSecretKey0000000000000000000"
_SERVICE_BY_TARGET = {
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "SpencerFrontendService": "ecr-public",
    "secretsmanager": "secretsmanager",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--metadata",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the metadata store every test server uses (default sqlite)",
    )
    parser.addoption(
        "--blobs",
        choices=["filesystem", "s3"],
        default="filesystem",
        help="the blob store every test server uses (default filesystem); s3 is a bucket of "
        "its own on one S3-protocol server (moto) started for the session",
    )


class _Backend:
    """The stores test servers use, and what was made for them: PostgreSQL databases, the
    S3-protocol server."""

    name = "sqlite"
    blobs = "filesystem"
    created_databases: list[str] = []
    s3: S3Server | None = None


def session_s3_server() -> S3Server:
    """The session's S3-protocol server, started on first use and stopped at the end."""
    if _Backend.s3 is None:
        server = S3Server()
        server.start()
        _Backend.s3 = server
    return _Backend.s3


def pytest_configure(config: pytest.Config) -> None:
    _Backend.name = config.getoption("--metadata")
    _Backend.blobs = config.getoption("--blobs")
    config.addinivalue_line(
        "markers",
        "metadata_independent: runs no server whose metadata store matters (only in the "
        "SQLite pass)",
    )
    config.addinivalue_line(
        "markers",
        "filesystem_blobs: looks at the filesystem blob store's folders (left out with --blobs=s3)",
    )
    if _Backend.name == "postgresql":
        reason = postgres_unreachable_reason()
        if reason is not None:
            if os.environ.get("CI") == "true":
                pytest.exit(f"CI: {reason}", returncode=1)
            pytest.exit(f"skipping the PostgreSQL pass: {reason}", returncode=0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass leaves out what does not depend on the metadata store, and the S3
    pass what looks at the filesystem blob store."""
    metadata_tests = Path(__file__).parent / "metadata"  # they run on both stores already

    def kept_item(item: pytest.Item) -> bool:
        if _Backend.blobs == "s3" and item.get_closest_marker("filesystem_blobs") is not None:
            return False
        if _Backend.name != "postgresql":
            return True
        return (
            item.get_closest_marker("metadata_independent") is None
            and metadata_tests not in item.path.parents
        )

    kept = [item for item in items if kept_item(item)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for database in _Backend.created_databases:
        _postgres_statement(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _Backend.created_databases.clear()
    if _Backend.s3 is not None:
        _Backend.s3.stop()
        _Backend.s3 = None


def _postgres_statement(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(
            POSTGRES_SERVER_URL.replace("+asyncpg", "") + "/test", timeout=10
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    # In a thread of its own: a test may already run an event loop on this one (Playwright).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result(timeout=60)


def postgres_unreachable_reason() -> str | None:
    """Why the PostgreSQL at 127.0.0.1:5432 cannot be used, or None when it answers."""
    try:
        _postgres_statement("SELECT 1")
    except Exception as error:  # any failure to connect means: not usable, and say why
        return f"no PostgreSQL at 127.0.0.1:5432/test ({type(error).__name__}: {error})"
    return None


def new_postgres_database() -> str:
    """The URL of a new, empty PostgreSQL database, dropped when the session ends."""
    name = f"ecrd_test_{uuid.uuid4().hex[:12]}"
    _postgres_statement(f'CREATE DATABASE "{name}"')
    _Backend.created_databases.append(name)
    return f"{POSTGRES_SERVER_URL}/{name}"


def require_postgres() -> None:
    """Skip the test when no PostgreSQL answers at 127.0.0.1:5432; under CI, fail it."""
    reason = postgres_unreachable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


@contextmanager
def postgres_database() -> Iterator[str]:
    """The plain `postgresql://` URL of a new, empty database (dropped when the session ends);
    without a server the test is skipped, or fails under CI."""
    require_postgres()
    yield new_postgres_database().replace("postgresql+asyncpg://", "postgresql://")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """A command that failed with one line on stderr naming each of `named`, and no
    traceback; return that line."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


def _bucket_keys(bucket: str, prefix: str) -> list[str]:
    """Every key under `prefix` in a bucket of the session's S3 server, and the keys of
    unfinished multipart uploads there (their parts are stored bytes too)."""
    client = session_s3_server().s3_client()
    return object_keys(client, bucket, prefix) + [
        upload["Key"] for upload in multipart_uploads(client, bucket, prefix)
    ]


def _login_password(ecr: Any) -> str:
    """The password of GetAuthorizationToken's token, which ECR gives as `AWS:<password>`."""
    (data,) = ecr.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS", user
    return password


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """The environment without ECRD_* settings, so a developer's shell cannot leak in."""
    return {key: value for key, value in os.environ.items() if not key.startswith("ECRD_")}


@dataclass(frozen=True)
class AccessKeyPair:
    access_key_id: str
    secret_access_key: str
    arn: str


class EcrdServer:
    """An `ecrd serve` child process; `host` is what clients put in image references.

    It starts with the root key ROOT_ACCESS_KEY_ID of the default account; `environment`
    adds ECRD_* settings of the test's own. Under `--metadata=postgresql` its metadata lives
    in a PostgreSQL database of its own (kept across restarts), unless the test names one.
    """

    def __init__(
        self,
        data_dir: Path,
        extra_args: list[str] | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.environment = environment or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self._registry_password: str | None = None
        self.database_url: str | None = None
        names_database = "--database-url" in self.extra_args or any(
            key == "ECRD_DATABASE_URL" for key in self.environment
        )
        if _Backend.name == "postgresql" and not names_database:
            self.database_url = new_postgres_database()
        self.database_url = self.environment.get("ECRD_DATABASE_URL", self.database_url)
        # Under --blobs=s3 a bucket of its own (kept across restarts), unless the test names
        # its blob store; ecrd streams blobs itself, as on the filesystem (the redirect has
        # tests of its own).
        self.s3_bucket: str | None = None
        if _Backend.blobs == "s3" and "ECRD_BLOB_STORE" not in self.environment:
            s3 = session_s3_server()
            self.s3_bucket = s3.create_bucket()
            self.environment = {
                **s3.environment(),
                "ECRD_BLOB_STORE": "s3",
                "ECRD_S3_BUCKET": self.s3_bucket,
                "ECRD_S3_ENDPOINT_URL": s3.endpoint_url,
                "ECRD_S3_REDIRECT": "false",
                **self.environment,
            }

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
        if self.database_url is not None:
            command += ["--database-url", self.database_url]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        environment = clean_environment()
        environment["ECRD_BOOTSTRAP_ACCESS_KEY_ID"] = ROOT_ACCESS_KEY_ID
        environment["ECRD_BOOTSTRAP_SECRET_ACCESS_KEY"] = ROOT_SECRET_ACCESS_KEY
        environment.update(self.environment)
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment
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
        # A server that never answered must not outlive the test that started it.
        self.stop()
        raise RuntimeError(
            f"ecrd did not answer in {START_TIMEOUT_SECONDS}s: {self.log_path.read_text()[-2000:]}"
        )

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

    def store_arguments(self) -> list[str]:
        """The `ecrd` options that name this server's store (for `ecrd keys ...`)."""
        arguments = ["--data-dir", str(self.data_dir)]
        if self.database_url is not None:
            arguments += ["--database-url", self.database_url]
        return arguments

    def stored_upload_ids(self) -> set[str]:
        """Ids of the uploads whose bytes the blob store holds (folder or bucket)."""
        if self.s3_bucket is None:
            folder = self.data_dir / "uploads"
            return {path.name for path in folder.iterdir()} if folder.is_dir() else set()
        keys = _bucket_keys(self.s3_bucket, "uploads/")
        return {key.split("/")[1] for key in keys}

    def stored_blob_digests(self) -> set[str]:
        """Digests of the committed blobs the blob store holds (folder or bucket)."""
        if self.s3_bucket is None:
            folder = self.data_dir / "blobs"
            return {
                f"{path.parent.parent.name}:{path.name}"
                for path in folder.glob("*/*/*")
                if path.is_file()
            }
        keys = _bucket_keys(self.s3_bucket, "blobs/")
        return {f"{key.split('/')[1]}:{key.split('/')[3]}" for key in keys}

    def stored_blob_bytes(self) -> int:
        """Bytes of the committed blobs the blob store holds (folder or bucket)."""
        if self.s3_bucket is None:
            folder = self.data_dir / "blobs"
            return sum(path.stat().st_size for path in folder.glob("*/*/*") if path.is_file())
        client = session_s3_server().s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3_bucket, Prefix="blobs/"
        )
        return sum(entry["Size"] for page in pages for entry in page.get("Contents", []))

    def ecrd_command(
        self, *arguments: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `ecrd ARGUMENTS` against this server's store (its data folder, database and
        blob store), as an operator would beside the running server."""
        environment = clean_environment()
        environment.update(self.environment)
        return subprocess.run(
            [sys.executable, "-m", "ecrd", *arguments, *self.store_arguments()],
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
        )

    def ecrd_process(self, *arguments: str) -> subprocess.Popen[str]:
        """Start `ecrd ARGUMENTS` against this server's store, to run beside other work;
        the caller waits for it (communicate) and so ends it."""
        environment = clean_environment()
        environment.update(self.environment)
        return subprocess.Popen(
            [sys.executable, "-m", "ecrd", *arguments, *self.store_arguments()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )

    def metadata_query(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query on this server's metadata store (SQLite or
        PostgreSQL), to check what a request left behind."""
        from sqlalchemy import text

        from ecrd.metadata.database import Database

        url = self.database_url or f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"

        async def run() -> list[tuple[Any, ...]]:
            database = Database(url)
            try:
                return await database.read(
                    lambda connection: [
                        tuple(row) for row in connection.execute(text(sql), parameters)
                    ]
                )
            finally:
                await database.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, run()).result(timeout=60)

    def signing_key(self) -> tuple[int, bytes]:
        """(generation, secret) of the key this server signs tokens with now (opened with
        its sealing keys)."""
        from ecrd.metadata.signing_keys import signing_key_context

        generation, secret_hex, sealed = self.metadata_query(
            "SELECT generation, secret_hex, secret_sealed FROM signing_keys "
            "ORDER BY generation DESC LIMIT 1"
        )[0]
        if sealed is None:
            return int(generation), bytes.fromhex(secret_hex)
        return int(generation), self.keyring().open(sealed, signing_key_context(generation))

    def keyring(self) -> Keyring:
        """The sealing keys this server uses: ECRD_SEALING_KEYS, else its key file."""
        from ecrd.sealing import KEY_FILE_NAME, parse_keys

        configured = self.environment.get("ECRD_SEALING_KEYS")
        if configured:
            return Keyring(parse_keys(configured, "ECRD_SEALING_KEYS"))
        key_file = self.environment.get("ECRD_SEALING_KEY_FILE")
        path = Path(key_file) if key_file else self.data_dir / KEY_FILE_NAME
        return Keyring(parse_keys(path.read_text(), str(path)))

    def token_issuer(self) -> TokenIssuer:
        """An issuer that signs as this server does (to make tokens it would not hand out)."""
        generation, secret = self.signing_key()
        return TokenIssuer.with_secret(secret, generation)

    def ecr(self, service: str = "ecr", **options: Any) -> Any:
        """A boto3 client signed with the root key, with no retries to hide errors."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=options.pop("region_name", REGION),
            aws_access_key_id=options.pop("aws_access_key_id", ROOT_ACCESS_KEY_ID),
            aws_secret_access_key=options.pop("aws_secret_access_key", ROOT_SECRET_ACCESS_KEY),
            config=Config(retries={"max_attempts": 1}, **options),
            verify=False,
        )

    def registry_password(self, key: AccessKeyPair | None = None) -> str:
        """A registry token of the root, or of `key`'s principal (what `aws ecr
        get-login-password` prints)."""
        if key is not None:
            return _login_password(self.ecr_as(key))
        if self._registry_password is None:
            self._registry_password = _login_password(self.ecr())
        return self._registry_password

    def create_key(
        self, account_id: str = ACCOUNT_ID, user: str | None = None, policies: Sequence[Any] = ()
    ) -> AccessKeyPair:
        """A new access key made with `ecrd keys create` on this server's store."""
        command = [sys.executable, "-m", "ecrd", "keys", "create", *self.store_arguments()]
        command += ["--account", account_id]
        if user is not None:
            command += ["--user", user]
        for number, policy in enumerate(policies):
            path = self.data_dir.parent / f"policy-{uuid.uuid4().hex}-{number}.json"
            path.write_text(policy if isinstance(policy, str) else json.dumps(policy))
            command += ["--policy", str(path)]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=clean_environment()
        )
        if result.returncode != 0:
            raise RuntimeError(f"ecrd keys create failed: {result.stderr}")
        created = json.loads(result.stdout)
        return AccessKeyPair(created["AccessKeyId"], created["SecretAccessKey"], created["Arn"])

    def ecr_as(self, key: AccessKeyPair, service: str = "ecr", **options: Any) -> Any:
        """A boto3 client signed with `key`."""
        return self.ecr(
            service,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            **options,
        )

    def auth(self) -> EcrdAuth:
        return EcrdAuth(self)

    def http(self, **options: Any) -> httpx.Client:
        """An httpx client that signs API calls and logs in to /v2/ as the root."""
        return httpx.Client(base_url=self.url, timeout=30, auth=self.auth(), **options)


def basic_login(server: EcrdServer) -> str:
    """The Basic credentials (base64 of AWS:<token>) of the server's root."""
    return base64.b64encode(f"AWS:{server.registry_password()}".encode()).decode()


class EcrdAuth(httpx.Auth):
    """httpx auth as real clients do it: SigV4 on `POST /` API calls, and Basic with a
    registry token on /v2/."""

    requires_request_body = True

    def __init__(
        self,
        server: EcrdServer,
        access_key_id: str = ROOT_ACCESS_KEY_ID,
        secret_access_key: str = ROOT_SECRET_ACCESS_KEY,
    ) -> None:
        self.server = server
        self.credentials = Credentials(access_key_id, secret_access_key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.method == "POST" and request.url.path == "/":
            self._sign(request)
        else:
            request.headers["Authorization"] = (
                "Basic "
                + base64.b64encode(f"AWS:{self.server.registry_password()}".encode()).decode()
            )
        yield request

    def _sign(self, request: httpx.Request) -> None:
        prefix = request.headers.get("x-amz-target", "").partition(".")[0]
        signed_names = ("content-type", "x-amz-target")
        aws_request = AWSRequest(
            method="POST",
            url=str(request.url),
            data=request.content,
            headers={
                name: request.headers[name] for name in signed_names if name in request.headers
            },
        )
        service = _SERVICE_BY_TARGET.get(prefix, "ecr")
        SigV4Auth(self.credentials, service, REGION).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date"):
            request.headers[name] = aws_request.headers[name]


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
    """httpx logged in as the root: signed API calls, token auth on /v2/."""
    with server.http() as http:
        yield http


@pytest.fixture
def anonymous(server: EcrdServer) -> Iterator[httpx.Client]:
    """httpx with no credentials at all."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
