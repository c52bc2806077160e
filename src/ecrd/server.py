"""Running the ASGI app under uvicorn, in one process or several workers."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ecrd.app import create_app
from ecrd.metadata.database import Database
from ecrd.settings import Settings

# Worker processes rebuild the settings from this variable (its name is outside ECRD_*, so it
# is never mistaken for a user setting).
_WORKER_SETTINGS = "_ECRD_WORKER_SETTINGS"


def worker_app() -> Starlette:
    """The app factory uvicorn calls in each worker process."""
    settings = Settings.model_validate(json.loads(os.environ[_WORKER_SETTINGS]))
    return create_app(settings, migrate=False)


async def _migrate(settings: Settings) -> None:
    database = Database(settings.metadata_url)
    try:
        await database.migrate()
    finally:
        await database.close()


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, with ecrd's own logger going to the same handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["ecrd"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_migrate(settings))
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
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
