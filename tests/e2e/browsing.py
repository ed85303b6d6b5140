"""What the browser tests share (their fixtures are in ``conftest.py``): where Chromium is, an app
served on a local port, and the console as a browser sees it, with people added by the
administrator and signed in, each in a fresh browser context."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from riskrelay.devstack import free_port
from riskrelay.testing import eventually

PASSWORD = "correct horse battery"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("RISKRELAY_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@contextlib.asynccontextmanager
async def on_port(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """The app with its lifespan (consumers, database) served on ``port`` (a free one unless the
    test chose it beforehand, as a callback URL registered at a provider names it)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started) or task.done()

    await eventually(started, timeout=60)
    assert server.started, "the service did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass(frozen=True)
class Console:
    """A running console (reporting served on ``url``) and the escalator it acts through."""

    url: str
    reporting: FastAPI
    escalator: FastAPI
    admin_token: str


@dataclass(frozen=True)
class BrowserConsole:
    """The console and a Chromium (Playwright's ``Browser``) to use it with."""

    console: Console
    browser: Any

    @property
    def url(self) -> str:
        return self.console.url

    async def add_people(self, people: Sequence[tuple[str, str, list[str]]]) -> None:
        """Each (e-mail, name, roles) made a console user by the administrator."""
        async with httpx.AsyncClient(base_url=self.url) as admin:
            for email, name, roles in people:
                created = await admin.put(
                    f"/v1/console/users/{email}",
                    json={"name": name, "roles": roles, "password": PASSWORD},
                    headers={"Authorization": f"Bearer {self.console.admin_token}"},
                )
                assert created.status_code == 201, created.text

    async def sign_in(self, email: str) -> Any:
        """A fresh browser context (its own cookies) signed in as ``email``; its page."""
        context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.goto(f"{self.url}/console/queue")
        assert "/console/login" in page.url, "an unsigned visitor is sent to sign in"
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{self.url}/console/queue")
        return page
