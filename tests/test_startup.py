"""`ecrd serve` refuses a start that cannot work: one line naming the cause, a non-zero exit
status, no traceback, and nothing created (no data folder, no metadata.db, no token key, no
root key printed).

Each case runs `python -m ecrd serve` as a user would, with no ECRD_* variable from the shell.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ecrd.metadata.database import CONNECT_TIMEOUT_SECONDS
from ecrd.settings import SettingsError, load_settings
from tests.conftest import (
    POSTGRES_SERVER,
    EcrdServer,
    assert_one_line_error,
    clean_environment,
    free_port,
    postgres_database,
    require_postgres,
    session_s3_server,
)

pytestmark = pytest.mark.metadata_independent

COMMAND_TIMEOUT_SECONDS = 60
# Python's start and the import of ecrd take a second or two on a busy machine.
START_OVERHEAD_SECONDS = 10


def serve(
    tmp_path: Path, *args: str, port: int | None = None, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`ecrd serve` in tmp_path (so no ecrd.toml of the checkout applies), expected to stop."""
    command = [sys.executable, "-m", "ecrd", "serve", "--port", str(port or free_port()), *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        env=clean_environment() | (environment or {}),
        cwd=tmp_path,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """A non-zero exit with one line on stderr naming `named`, no traceback, no key printed."""
    line = assert_one_line_error(result, *named)
    # the environment has no bootstrap pair: a store made anyway would print a new root key
    assert result.stdout == ""
    assert "access key" not in result.stderr
    return line


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Where the server is told to keep its data; the refused starts must not create it."""
    return tmp_path / "data"


# The database URL


@pytest.mark.parametrize("url", ["mysql://ecrd@127.0.0.1/ecrd", "foo://"])
def test_an_unknown_database_scheme_is_refused(tmp_path: Path, data_dir: Path, url: str) -> None:
    # when the server starts on a URL of a database ecrd does not speak
    result = serve(tmp_path, "--data-dir", str(data_dir), "--database-url", url)

    # then it names the setting and the scheme, and says what it takes
    scheme = url.partition("://")[0]
    line = assert_refused(result, "database_url", f"'{scheme}'", "postgresql://", "sqlite:///")
    assert line.startswith("ecrd: ")
    assert not data_dir.exists()


def test_an_sqlite_database_in_memory_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # when the metadata store would be an SQLite database in memory (each engine its own)
    result = serve(tmp_path, "--data-dir", str(data_dir), "--database-url", "sqlite://")

    # then the start is refused: the store must be a file
    assert_refused(result, "database_url", "sqlite:///PATH")
    assert not data_dir.exists()


def test_an_sqlite_database_in_a_missing_folder_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # given an SQLite URL whose folder does not exist (SQLite would not make it)
    database_file = tmp_path / "missing" / "metadata.db"

    # when the server starts on it
    result = serve(
        tmp_path, "--data-dir", str(data_dir), "--database-url", f"sqlite:///{database_file}"
    )

    # then it names the database and creates neither folder
    assert_refused(result, str(database_file), "does not exist")
    assert not data_dir.exists()
    assert not database_file.parent.exists()


# An S3 bucket that does not answer


def test_an_s3_store_needs_a_bucket(tmp_path: Path, data_dir: Path) -> None:
    result = serve(tmp_path, "--data-dir", str(data_dir), environment={"ECRD_BLOB_STORE": "s3"})
    assert_refused(result, "s3_bucket", "blob_store")
    assert not data_dir.exists()


def test_an_s3_bucket_that_does_not_exist_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # given an S3 server without the bucket the settings name
    s3 = session_s3_server()
    environment = {
        **s3.environment(),
        "ECRD_BLOB_STORE": "s3",
        "ECRD_S3_BUCKET": "no-such-bucket",
        "ECRD_S3_ENDPOINT_URL": s3.endpoint_url,
    }
    # when the server starts on it, then it names the bucket and S3's answer, creating nothing
    result = serve(tmp_path, "--data-dir", str(data_dir), environment=environment)
    assert_refused(result, "cannot reach the S3 bucket no-such-bucket", "no such bucket")
    assert not data_dir.exists()


def test_an_s3_endpoint_with_nothing_listening_is_refused(tmp_path: Path, data_dir: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    environment = {
        **session_s3_server().environment(),
        "ECRD_BLOB_STORE": "s3",
        "ECRD_S3_BUCKET": "bucket",
        "ECRD_S3_ENDPOINT_URL": endpoint,
    }
    started = time.monotonic()
    result = serve(tmp_path, "--data-dir", str(data_dir), environment=environment)
    assert_refused(result, "cannot reach the S3 bucket bucket", endpoint)
    assert time.monotonic() - started < START_OVERHEAD_SECONDS + 10
    assert not data_dir.exists()


# A database that does not answer


def test_a_database_port_with_nothing_listening_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # given a PostgreSQL URL on a loopback port where nothing listens
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/ecrd"

    # when the server starts on it
    started = time.monotonic()
    result = serve(tmp_path, "--data-dir", str(data_dir), "--database-url", url)

    # then it says the connection was refused, at once, and creates nothing
    assert_refused(result, "cannot reach the database", url, "connection refused")
    assert time.monotonic() - started < START_OVERHEAD_SECONDS
    assert not data_dir.exists()


def test_a_database_that_never_answers_is_given_up_on_in_seconds(
    tmp_path: Path, data_dir: Path
) -> None:
    # given a port that accepts connections (the kernel's backlog) but never says a word
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/ecrd"

        # when the server starts on it
        started = time.monotonic()
        result = serve(tmp_path, "--data-dir", str(data_dir), "--database-url", url)
        waited = time.monotonic() - started

    # then it gives up after the connect timeout, not asyncpg's default minute
    assert_refused(result, "cannot reach the database", "no answer")
    assert CONNECT_TIMEOUT_SECONDS <= waited < CONNECT_TIMEOUT_SECONDS + START_OVERHEAD_SECONDS
    assert not data_dir.exists()


def test_a_postgresql_database_that_does_not_exist_is_refused(
    tmp_path: Path, data_dir: Path
) -> None:
    # given the PostgreSQL server, and a database name it does not have
    require_postgres()
    url = f"postgresql://{POSTGRES_SERVER}/ecrd_no_such_db"

    # when the server starts on it
    result = serve(tmp_path, "--data-dir", str(data_dir), "--database-url", url)

    # then PostgreSQL's own reason is the line, and nothing is created
    assert_refused(result, "cannot reach the database", '"ecrd_no_such_db" does not exist')
    assert not data_dir.exists()


def test_a_password_in_the_database_url_is_not_shown(tmp_path: Path, data_dir: Path) -> None:
    # given a URL with a password, on a port where nothing listens
    url = f"postgresql://ecrd:hunter2secret@127.0.0.1:{free_port()}/ecrd"

    # when the server refuses it; then the line names the database but hides the password
    line = assert_refused(serve(tmp_path, "--data-dir", str(data_dir), "--database-url", url))
    assert "127.0.0.1" in line
    assert "hunter2secret" not in line


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_url_serves_through_asyncpg(tmp_path: Path, scheme: str) -> None:
    # given a new, empty PostgreSQL database named by a plain postgresql:// (or postgres://) URL
    with postgres_database() as url:
        server = EcrdServer(
            tmp_path / "data", ["--database-url", url.replace("postgresql://", f"{scheme}://")]
        )

        # when the server starts on it
        server.start()
        try:
            # then it answers the API with its bootstrap key, and the store is in PostgreSQL
            registry = server.ecr().describe_registry()
            assert registry["registryId"] == "000000000000"
            assert not (server.data_dir / "metadata.db").exists()
        finally:
            server.stop()


# The data folder


def test_a_data_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    # given a file where the data folder should be
    data_file = tmp_path / "data"
    data_file.write_text("not a folder")

    # when the server starts on it; then it says so, and leaves the file and its folder alone
    assert_refused(serve(tmp_path, "--data-dir", str(data_file)), str(data_file), "not a folder")
    assert data_file.read_text() == "not a folder"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]


def test_a_data_folder_below_a_file_is_refused(tmp_path: Path) -> None:
    # given a data folder whose parent is a file
    parent = tmp_path / "file"
    parent.write_text("")

    # when the server starts; then it names the file that is in the way
    result = serve(tmp_path, "--data-dir", str(parent / "data"))
    assert_refused(result, "cannot create data folder", f"{parent} is not a folder")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty folder nobody can write to, root included: a read-only tmpfs mounted there
    (permission bits do not stop root), or mode 0555 when the tests do not run as root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("mount") is None:
        pytest.skip("running as root without `mount`: no way to make a folder read-only")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root, and a read-only tmpfs cannot be mounted: {mounted.stderr}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, timeout=COMMAND_TIMEOUT_SECONDS)


def test_a_data_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, read_only_folder: Path
) -> None:
    # when the server starts on a data folder that exists but cannot be written
    result = serve(tmp_path, "--data-dir", str(read_only_folder))

    # then it names the folder and why, and nothing appeared in it
    assert_refused(result, str(read_only_folder), "not writable")
    assert list(read_only_folder.iterdir()) == []


def test_a_data_folder_that_cannot_be_made_is_refused(
    tmp_path: Path, read_only_folder: Path
) -> None:
    # when the server starts on a data folder to be made inside a folder that cannot be written
    data_dir = read_only_folder / "data"
    result = serve(tmp_path, "--data-dir", str(data_dir))

    # then it names both, and nothing appeared
    assert_refused(result, "cannot create data folder", str(data_dir), "not writable")
    assert list(read_only_folder.iterdir()) == []


# The port


def test_a_port_in_use_is_refused_before_anything_is_created(
    tmp_path: Path, data_dir: Path
) -> None:
    # given another server listening on the port
    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen(8)
        port = other_server.getsockname()[1]

        # when ecrd starts on the same port
        result = serve(tmp_path, "--data-dir", str(data_dir), port=port)

    # then it says the port is in use, without uvicorn's traceback, and made no data folder
    assert_refused(result, f"port {port}", "in use")
    assert not data_dir.exists()


def test_the_port_probe_is_closed_before_the_server_listens(tmp_path: Path) -> None:
    # given a port that was free
    server = EcrdServer(tmp_path / "data")

    # when the server starts (the check binds the port and lets it go); then it answers on it
    server.start()
    try:
        assert httpx.get(f"{server.url}/v2/", timeout=10).status_code == 401
        # and the data folder, token signing key and bootstrap key were made after the checks
        # passed (the signing key in the metadata store, not in the data folder)
        assert server.signing_key()[0] == 1
        assert not (server.data_dir / "token-signing.key").exists()
        assert server.ecr().describe_registry()["registryId"] == "000000000000"
    finally:
        server.stop()


# TLS files and settings (refused with one line as well)


def test_a_missing_tls_certificate_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # when the server starts with certificate and key files that do not exist
    missing = tmp_path / "missing.pem"
    result = serve(
        tmp_path, "--data-dir", str(data_dir), "--tls-cert", str(missing), "--tls-key", str(missing)
    )

    # then it names the setting and the file
    assert_refused(result, "tls_cert", str(missing))
    assert not data_dir.exists()


def test_tls_files_that_are_not_pem_are_refused(tmp_path: Path, data_dir: Path) -> None:
    # given a file that is no PEM certificate at all
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")

    # when the server starts with it as certificate and key; then one line says they do not load
    result = serve(
        tmp_path, "--data-dir", str(data_dir), "--tls-cert", str(not_pem), "--tls-key", str(not_pem)
    )
    assert_refused(result, "tls_key", "do not load")
    assert not data_dir.exists()


def test_a_tls_certificate_without_a_key_is_refused(tmp_path: Path, data_dir: Path) -> None:
    # when the server starts with --tls-cert only; then one line names tls_key
    result = serve(tmp_path, "--data-dir", str(data_dir), "--tls-cert", str(tmp_path / "c.pem"))
    assert_refused(result, "tls_key")
    assert not data_dir.exists()


def test_the_first_failing_check_is_the_one_reported(tmp_path: Path) -> None:
    # given both a bad database URL and a data folder that is a file
    data_file = tmp_path / "data"
    data_file.write_text("")

    # when the server starts; then the URL is named (it is checked first), and only it
    result = serve(tmp_path, "--data-dir", str(data_file), "--database-url", "mysql://x/y")
    line = assert_refused(result, "database_url")
    assert str(data_file) not in line


def test_a_bootstrap_secret_of_the_wrong_form_is_refused_before_a_store_is_made(
    tmp_path: Path, data_dir: Path
) -> None:
    # given a bootstrap pair whose secret is too short for an AWS secret access key
    secret = "tooShort+1"
    pair = {
        "ECRD_BOOTSTRAP_ACCESS_KEY_ID": "AKIA" + "B" * 16,
        "ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": secret,
    }

    # when the server starts; then the setting is named, the secret is not shown, and no
    # store was made to find that out
    result = serve(tmp_path, "--data-dir", str(data_dir), environment=pair)
    assert_refused(result, "bootstrap_secret_access_key", "16 to 64")
    assert secret not in result.stderr
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"ECRD_BOOTSTRAP_ACCESS_KEY_ID": "AKIA" + "C" * 16}, "bootstrap_secret_access_key"),
        ({"ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": "s" * 40}, "bootstrap_access_key_id"),
    ],
    ids=["id-without-secret", "secret-without-id"],
)
def test_half_a_bootstrap_pair_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: dict[str, str], named: str
) -> None:
    # given one half of the bootstrap pair (and no ecrd.toml, no other ECRD_* variable)
    for key in os.environ:
        if key.startswith("ECRD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for key, value in given.items():
        monkeypatch.setenv(key, value)

    # when the settings are read; then the missing half is named, in one line
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert named in str(refused.value) and "\n" not in str(refused.value)
