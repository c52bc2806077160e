"""GET /healthz: the process answers. GET /readyz: its metadata store and blob store answer.

Both are small JSON, without auth, for load balancers and orchestrators:

    200 {"status": "ok"}
    200 {"status": "ready", "checks": {"metadata": "ok", "blobs": "ok"}}
    503 {"status": "not ready", "checks": {"metadata": "failed: OperationalError", "blobs": "ok"}}

The failing check names the error's type only (the details, which may hold paths or host
names, go to the server log); a check that takes longer than CHECK_TIMEOUT_SECONDS fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecrd.blobs.store import BlobStore
from ecrd.metadata.database import Database

CHECK_TIMEOUT_SECONDS = 3.0
logger = logging.getLogger("ecrd")


async def liveness(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _select_one(connection: Connection) -> None:
    connection.execute(text("SELECT 1")).scalar_one()


class Readiness:
    def __init__(self, database: Database, blob_store: BlobStore) -> None:
        self._checks: dict[str, Callable[[], Awaitable[object]]] = {
            "metadata": lambda: database.read(_select_one),
            "blobs": blob_store.check,
        }

    async def answer(self, request: Request) -> Response:
        names = list(self._checks)
        results = await asyncio.gather(*(self._check(name) for name in names))
        checks = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _check(self, name: str) -> str:
        try:
            await asyncio.wait_for(self._checks[name](), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("readiness: the %s check took over %ss", name, CHECK_TIMEOUT_SECONDS)
            return "failed: timeout"
        except Exception as error:  # any failure of a store means: not ready, and say which
            logger.warning("readiness: the %s check failed: %r", name, error)
            return f"failed: {type(error).__name__}"
        return "ok"
