"""The browser tests' setup: Chromium is Debian's ``/usr/bin/chromium``
(``scripts/ensure-chromium.sh``), driven by Playwright, whose own browser downloads are never
used. Outside CI a test is skipped when either is missing; in CI (``CI`` set) it must run.

A module using ``browser_console`` provides the ``console`` fixture (a
:class:`~tests.e2e.browsing.Console`): the services it starts are its own.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browsing import CHROMIUM_ARGS, BrowserConsole, Console, chromium_path

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable."""
    found = chromium_path()
    if found is None and os.environ.get("CI"):
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-chromium.sh")], check=False)
        found = chromium_path()
        assert found, "CI must run the browser test: scripts/ensure-chromium.sh failed"
    if found is None:
        pytest.skip("chromium not found (not in CI): run scripts/ensure-chromium.sh to install it")
    return found


@pytest.fixture(scope="module")
def playwright() -> Any:
    """Playwright's ``async_playwright``, checked before any service starts."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (uv sync installs the dev group)")
    return async_playwright


@pytest.fixture
async def browser_console(
    chromium: str, playwright: Any, console: Console
) -> AsyncIterator[BrowserConsole]:
    """The module's console and Chromium launched through Playwright, closed afterwards."""
    async with playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield BrowserConsole(console, browser)
        finally:
            await browser.close()
