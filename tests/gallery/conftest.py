"""A headless Chromium (Debian's, driven by Playwright) for the gallery's browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Every Playwright wait in these tests gives up after this long.
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless; the tests skip when it or Playwright is missing.

    Module-scoped on purpose: Playwright's sync API runs an event loop on the main thread
    while it is open, and later tests call asyncio.run(), which refuses to nest in one.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/install-test-tools installs chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=TIMEOUT_MS
        )
        yield instance
        instance.close()
