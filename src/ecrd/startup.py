"""Checks made before `ecrd serve` or `ecrd keys` creates anything.

A start that cannot work stops with one line naming the cause and leaves nothing behind: no
data folder, no metadata.db, no root key, no token key. `check_before_serving` runs these in
order; none of them writes:

    database URL       a scheme ecrd takes (`normalise_url`)
    TLS files          tls_cert and tls_key load as a certificate and its key
    listening address  the host resolves and the port binds (the probe is closed at once)
    data folder        a writable folder, or one that can be made: the nearest existing
                       parent is a writable folder
    SQLite file        its folder exists (or is the data folder) and is writable
    PostgreSQL         answers a query within a bounded time
    S3 bucket          (blob_store = "s3") answers a HeadBucket within a bounded time, with
                       the credentials of the standard AWS chain

`check_keys_store` is the same for `ecrd keys`, which works only on a store that exists.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from pathlib import Path

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ecrd.metadata.database import (
    CONNECT_TIMEOUT_SECONDS,
    Database,
    UnsupportedDatabaseUrl,
    normalise_url,
    printable_url,
    sqlite_path,
)
from ecrd.settings import Settings

# The driver's own timeout ends the wait first; this one bounds what happens after a connect.
_PING_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + 2


class StartupError(Exception):
    """The start cannot work; the message is one line naming the cause."""


def check_before_serving(settings: Settings) -> None:
    """Everything `ecrd serve` needs that can be checked without writing anything."""
    url = _checked_url(settings)
    _check_tls_files(settings)
    _check_port_free(settings.host, settings.port)
    _check_data_dir(settings.data_dir)
    database_file = sqlite_path(url)
    if database_file is None:
        _check_database_answers(url, settings.metadata_url)
    else:
        _check_sqlite_file(database_file, settings.data_dir)
    if settings.blob_store == "s3":
        asyncio.run(_check_bucket_answers(settings))


def check_keys_store(settings: Settings) -> None:
    """`ecrd keys` needs an existing store: a typo in --data-dir must not make an empty one."""
    url = _checked_url(settings)
    database_file = sqlite_path(url)
    if database_file is None:
        _check_database_answers(url, settings.metadata_url)
        return
    if not settings.database_url and not settings.data_dir.is_dir():
        raise StartupError(
            f"no ecrd data folder at {settings.data_dir.absolute()} (start the server once with "
            "this --data-dir, or give --database-url)"
        )
    if not database_file.is_file():
        flag = "--database-url" if settings.database_url else "--data-dir"
        raise StartupError(
            f"no ecrd metadata store at {database_file.absolute()} (start the server once with "
            f"this {flag}, or give --database-url)"
        )


def _checked_url(settings: Settings) -> str:
    try:
        return normalise_url(settings.metadata_url)
    except UnsupportedDatabaseUrl as error:
        raise StartupError(f"invalid setting 'database_url': {error}") from None


def _check_tls_files(settings: Settings) -> None:
    if settings.tls_cert is None or settings.tls_key is None:
        return  # the command refuses one without the other before this
    for name, path in (("tls_cert", settings.tls_cert), ("tls_key", settings.tls_key)):
        if not path.is_file():
            raise StartupError(f"invalid setting {name!r}: {path} is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback keeps OpenSSL from prompting on the terminal for an encrypted
        # key (the server has no way to pass one).
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password=lambda: b"")
    except OSError as error:  # ssl.SSLError is one
        raise StartupError(
            f"invalid setting 'tls_key': {settings.tls_cert} and {settings.tls_key} do not load "
            f"as a certificate and its unencrypted key ({error})"
        ) from None


def _check_port_free(host: str, port: int) -> None:
    """Bind every address the server will listen on, as asyncio's create_server does."""
    where = f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise StartupError(f"cannot listen on {where}: {error.strerror}") from None
    bound = 0
    for family, kind, protocol, _, address in dict.fromkeys(addresses):
        try:
            probe = socket.socket(family, kind, protocol)
        except OSError:
            continue  # an address family this machine lacks; asyncio skips it too
        with probe:
            # uvicorn sets SO_REUSEADDR, so a port left in TIME_WAIT is free for it too.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRNOTAVAIL:
                    continue  # asyncio skips it too (bpo-30945)
                if error.errno == errno.EADDRINUSE:
                    raise StartupError(f"port {port} is already in use ({where})") from None
                raise StartupError(f"cannot listen on {where}: {_os_reason(error)}") from None
        bound += 1
    if bound == 0:
        raise StartupError(f"cannot listen on {where}: no address of that host is usable here")


def _check_data_dir(data_dir: Path) -> None:
    folder = data_dir.absolute()
    try:
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = "is a file, not a folder" if folder.is_file() else "is not a folder"
                raise StartupError(f"data folder {folder} {what}")
            _require_writable(folder, f"data folder {folder}")
            return
        parent = next(path for path in folder.parents if path.exists())
        if not parent.is_dir():
            raise StartupError(f"cannot create data folder {folder}: {parent} is not a folder")
        _require_writable(parent, f"cannot create data folder {folder}: {parent}")
    except OSError as error:  # a parent that may not be searched, a loop of links
        raise StartupError(f"cannot use data folder {folder}: {_os_reason(error)}") from None


def _check_sqlite_file(database_file: Path, data_dir: Path) -> None:
    file = database_file.absolute()
    if file.exists():
        if not file.is_file():
            raise StartupError(f"SQLite database {file} is not a file")
        _require_writable(file, f"SQLite database {file}")
    if file.parent.resolve() == data_dir.resolve() and not file.parent.exists():
        return  # made with the data folder, already checked
    if not file.parent.is_dir():
        raise StartupError(f"the folder of SQLite database {file} does not exist")
    # SQLite keeps its -wal and -shm files beside the database.
    _require_writable(file.parent, f"the folder of SQLite database {file}")


def _require_writable(path: Path, subject: str) -> None:
    # access(2) answers EROFS even for root, whom permission bits do not stop.
    wanted = os.W_OK | os.X_OK if path.is_dir() else os.W_OK
    if os.access(path, wanted):
        return
    read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    reason = "read-only file system" if read_only else "permission denied"
    raise StartupError(f"{subject} is not writable ({reason})")


def _check_database_answers(url: str, given_url: str) -> None:
    asyncio.run(_ping(url, given_url))


async def _ping(url: str, given_url: str) -> None:
    database = Database(url)
    try:
        await asyncio.wait_for(database.ping(), _PING_TIMEOUT_SECONDS)
    except (OSError, SQLAlchemyError) as error:
        raise StartupError(
            f"cannot reach the database {printable_url(given_url)}: {_database_reason(error)}"
        ) from None
    finally:
        await database.close()


_BUCKET_STATUS = {
    "404": "no such bucket",
    "403": "access denied (check the AWS credentials and the bucket's policy)",
}


async def _check_bucket_answers(settings: Settings) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from ecrd.registry.services import blob_store_of

    where = f"the S3 bucket {settings.s3_bucket}"
    if settings.s3_endpoint_url:
        where += f" at {settings.s3_endpoint_url}"
    store = blob_store_of(settings)
    try:
        await asyncio.wait_for(store.check(), _PING_TIMEOUT_SECONDS)
    except TimeoutError:
        raise StartupError(
            f"cannot reach {where}: no answer within {_PING_TIMEOUT_SECONDS:g} s"
        ) from None
    except ClientError as error:
        found = error.response.get("Error", {})
        # HeadBucket answers with a bare status: say what it means.
        reason = _BUCKET_STATUS.get(
            str(found.get("Code")), f"{found.get('Code', '?')} {found.get('Message', '')}".strip()
        )
        raise StartupError(f"cannot reach {where}: {reason}") from None
    except BotoCoreError as error:
        raise StartupError(f"cannot reach {where}: {str(error).splitlines()[0]}") from None
    finally:
        store.close()


def _database_reason(error: OSError | SQLAlchemyError) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    if isinstance(error, DBAPIError) and error.orig is not None:
        text = str(error.orig)
    elif isinstance(error, OSError):
        text = _os_reason(error)
    else:
        text = str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _os_reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error)
    return os.strerror(error.errno).lower()
