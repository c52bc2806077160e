"""One thread of its own runs every SQLite write transaction of a process, in arrival order.

SQLite has one writer at a time anyway. Through the shared worker-thread pool each write was a
hop to whichever thread was free, then a wait in the connection pool behind the other writers
(eight writes at once parked seven threads on the pool's lock): ~130 µs of CPU per hop before
the transaction began, and a storm of lock wake-ups between the threads. Here a write is a
queue put, one wake of the writer, and one wake of the event loop when the result is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CancelScope

Result = TypeVar("Result")
_STOP = None


class _Job:
    __slots__ = ("function", "future", "loop")

    def __init__(
        self,
        function: Callable[[], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.function = function
        self.future = future
        self.loop = loop


class SqliteWriter:
    """A thread that runs the functions handed to `run`, one at a time."""

    def __init__(self, name: str = "ecrd-sqlite-writer") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, function: Callable[[], Result]) -> Result:
        """`function()` on the writer thread. Once handed over it runs to its end: a cancel
        of the caller waits for it (as the worker-thread pool's calls do), so a write is never
        left half known."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._submit(_Job(function, future, loop))
        with CancelScope(shield=True):
            result = await future
        return result

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("database is closed")
            if self._thread is None:
                # Started on first use: a process that never writes has no thread.
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            try:
                result = job.function()
            except BaseException as error:  # handed to the caller, whatever it is
                _settle(job, None, error)
            else:
                _settle(job, result, None)

    def close(self) -> None:
        """Let the queued writes finish, then end the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join()


def _settle(job: _Job, result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if job.future.cancelled():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    # A loop closed while the write ran has nobody waiting.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(settle)
