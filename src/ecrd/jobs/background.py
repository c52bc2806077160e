"""Fire-and-forget tasks that are not forgotten: kept, bounded, logged and drained at shutdown.

A bare `asyncio.create_task` whose result nobody keeps can be garbage collected mid-run (the
event loop holds only a weak reference), its exception is reported only as "Task exception was
never retrieved" whenever the task happens to be collected, and at shutdown it is cut off
wherever it is. `BackgroundTasks` keeps a reference to each task until it ends, logs what a
task raised, and lets the server wait for the running ones (`drain`) before it closes the
database they write to. Its work is best effort (a pull time, say): past `limit` tasks at once
a new one is dropped rather than let a burst of requests grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

DEFAULT_LIMIT = 1000
# After `drain` cancels what its timeout left running, how long the cancelled tasks get to end.
CANCEL_GRACE_SECONDS = 5.0
logger = logging.getLogger("ecrd.jobs")


class BackgroundTasks:
    """Tasks nobody awaits: `spawn(coroutine)` during the service, `await drain(timeout)` at
    its end."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("a limit of background tasks must be at least 1")
        self._limit = limit
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        """How many tasks are running."""
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        """Run `coroutine` as a task of its own; dropped (never started) when `limit` tasks
        are running already. Needs a running event loop."""
        if len(self._tasks) >= self._limit:
            coroutine.close()  # never started: close it so Python does not warn it was not awaited
            logger.debug("dropped a background task: %d are running already", len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.warning("background task %s failed", task.get_name(), exc_info=error)

    async def drain(self, timeout: float) -> None:
        """Wait for the running tasks (and any they start) up to `timeout` seconds, then
        cancel the rest and give them CANCEL_GRACE_SECONDS to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := {task for task in self._tasks if not task.done()}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(pending, timeout=remaining)
        pending = {task for task in self._tasks if not task.done()}
        if not pending:
            return
        logger.warning("cancelling %d background tasks still running at shutdown", len(pending))
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
