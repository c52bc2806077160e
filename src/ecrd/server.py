"""Running the ASGI app under uvicorn, in one process or several workers."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ecrd.app import create_app
from ecrd.auth.keys import NewKey, bootstrap_root_key, print_bootstrap_key
from ecrd.auth.tokens import SIGNATURE_PARAMETER
from ecrd.http_protocol import BoundedHttpToolsProtocol
from ecrd.metadata.database import Database
from ecrd.metadata.identities import IdentityStore
from ecrd.settings import Settings

# Worker processes rebuild the settings from this variable (its name is outside ECRD_*, so it
# is never mistaken for a user setting).
_WORKER_SETTINGS = "_ECRD_WORKER_SETTINGS"
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


class HidePresignedSignatures(logging.Filter):
    """Access-log lines show a presigned download URL without its signature: while it is
    valid, the URL is a credential."""

    _SIGNATURE = re.compile(rf"({SIGNATURE_PARAMETER}=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, path with query, version, status)
        if isinstance(record.args, tuple) and len(record.args) > 2:
            path = record.args[2]
            if isinstance(path, str) and SIGNATURE_PARAMETER in path:
                hidden = self._SIGNATURE.sub(r"\1REDACTED", path)
                record.args = (*record.args[:2], hidden, *record.args[3:])
        return True


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, with ecrd's own logger going to the same handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["ecrd"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    config.setdefault("filters", {})["hide_signatures"] = {
        "()": "ecrd.server.HidePresignedSignatures"
    }
    config["handlers"]["access"]["filters"] = ["hide_signatures"]
    return config


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        generated = asyncio.run(_prepare_store(settings))
    except ValueError as error:
        raise SystemExit(f"ecrd: {error}") from None
    if generated is not None:
        print_bootstrap_key(generated, settings)
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
        "http": BoundedHttpToolsProtocol,
        "log_level": settings.log_level,
        "log_config": _log_config(settings.log_level),
        "access_log": settings.log_level == "debug",
        "timeout_keep_alive": 75,
        "server_header": False,
    }
    if settings.tls_cert is not None:
        options["ssl_certfile"] = str(settings.tls_cert)
        options["ssl_keyfile"] = str(settings.tls_key) if settings.tls_key else None
    if settings.workers > 1:
        os.environ[_WORKER_SETTINGS] = settings.model_dump_json()
        uvicorn.run("ecrd.server:worker_app", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(create_app(settings, migrate=False), **options)
