"""Waiting for what a server does in the background (replication, say), bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T], done: Callable[[T], bool], seconds: float = 30, pause: float = 0.1
) -> T:
    """Call `probe` until `done` holds of its answer, at most `seconds`, pausing `pause`
    between calls; the last answer, or AssertionError naming it."""
    deadline = time.monotonic() + seconds
    answer = probe()
    while not done(answer):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {answer!r} after {seconds} s")
        time.sleep(pause)
        answer = probe()
    return answer
