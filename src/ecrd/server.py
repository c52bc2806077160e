"""Running the ASGI app under uvicorn, in one process or several workers."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import os
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ecrd.app import create_app
from ecrd.auth.keys import NewKey, bootstrap_root_key, print_bootstrap_key
from ecrd.http_protocol import BoundedHttpToolsProtocol
from ecrd.metadata.database import Database
from ecrd.metadata.identities import IdentityStore
from ecrd.observability.log_config import log_config
from ecrd.observability.metrics import worker_metrics_folder
from ecrd.sealing import load_keyring
from ecrd.settings import Settings
from ecrd.startup import StartupError, check_before_serving

# Worker processes rebuild the settings from this variable (its name is outside ECRD_*, so it
# is never mistaken for a user setting).
_WORKER_SETTINGS = "_ECRD_WORKER_SETTINGS"
WORKER_START_SECONDS = 60
logger = logging.getLogger("ecrd")


def worker_app() -> Starlette:
    """The app factory uvicorn calls in each worker process."""
    settings = Settings.model_validate(json.loads(os.environ[_WORKER_SETTINGS]))
    return create_app(settings, migrate=False)


async def _prepare_store(settings: Settings) -> NewKey | None:
    """Migrate the schema and give an empty store its root key (before any worker starts)."""
    database = Database(settings.metadata_url)
    try:
        await database.migrate()
        return await bootstrap_root_key(settings, IdentityStore(database))
    finally:
        await database.close()


def _log_config(settings: Settings) -> dict[str, Any]:
    """The logging setup of every process: ecrd's access log instead of uvicorn's (which
    would show presigned URLs' signatures), text or JSON lines (observability/log_config)."""
    return log_config(settings.log_level, settings.log_format)


def _settings_for_workers(settings: Settings) -> str:
    """The settings as JSON with secrets readable: a SecretStr dumps as "**********", which a
    worker would take for the secret itself. The variable lives in this process's own
    environment and its children's, as the settings that came in did."""
    values = settings.model_dump(mode="json")
    values["bootstrap_secret_access_key"] = settings.bootstrap_secret_access_key.get_secret_value()
    values["sealing_keys"] = settings.sealing_keys.get_secret_value()
    for destination, remote in settings.replication_remotes.items():
        values["replication_remotes"][destination]["secret_access_key"] = (
            remote.secret_access_key.get_secret_value()
        )
    return json.dumps(values)


def serve(settings: Settings) -> None:
    try:
        # What can be checked without writing is checked first, so that a start that cannot
        # work leaves no data folder, store or key behind.
        check_before_serving(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # The sealing key file, made now when missing: before any worker starts, and a bad
        # key file stops the start with one line.
        load_keyring(settings)
        generated = asyncio.run(_prepare_store(settings))
    except (StartupError, ValueError, OSError) as error:
        raise SystemExit(f"ecrd: {error}") from None
    if generated is not None:
        print_bootstrap_key(generated, settings)
    # Before the first line is logged, so that every line has the configured format.
    logging.config.dictConfig(_log_config(settings))
    if settings.auth_mode == "open":
        logger.warning(
            "ECRD_AUTH_MODE=open: every signed API call and every registry login acts as the "
            "root of account %s. Use this only for throwaway test setups.",
            settings.account_id,
        )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol.with_limits(
            settings.request_head_timeout_seconds, settings.request_body_stall_seconds
        ),
        "log_level": settings.log_level,
        "log_config": _log_config(settings),
        "access_log": False,
        "timeout_keep_alive": 75,
        "server_header": False,
    }
    if settings.tls_cert is not None:
        options["ssl_certfile"] = str(settings.tls_cert)
        options["ssl_keyfile"] = str(settings.tls_key) if settings.tls_key else None
    if settings.workers > 1:
        # A worker re-imports all of ecrd before it answers uvicorn's health check, which on a
        # busy machine takes longer than uvicorn's 5 s default.
        options["timeout_worker_healthcheck"] = WORKER_START_SECONDS
        os.environ[_WORKER_SETTINGS] = _settings_for_workers(settings)
        # Each worker writes its metrics to this start's folder; a scrape sums them all.
        with worker_metrics_folder() as metrics_folder:
            logger.info("the %d workers keep their metrics in %s", settings.workers, metrics_folder)
            uvicorn.run("ecrd.server:worker_app", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(create_app(settings, migrate=False), **options)
