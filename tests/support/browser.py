"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, offline.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` with a fresh
profile. Host names other than loopback do not resolve inside it, and every request the
page (or a worker of it) makes passes :class:`Traffic`, which records it and refuses any
that would leave loopback, so a test can prove the page needed nothing from outside.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    WebSocket,
    async_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback resolves: a forgotten CDN link fails instead of loading.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True  # never leaves the browser
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Traffic:
    """Every URL the page asked for (HTTP and websockets), those that were refused, and the
    page's errors (uncaught exceptions and console errors)."""

    requested: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        url = route.request.url
        self.requested.append(url)
        if is_loopback(url):
            await route.continue_()
        else:
            self.refused.append(url)
            await route.abort("internetdisconnected")

    def websocket(self, socket: WebSocket) -> None:
        self.requested.append(socket.url)
        if not is_loopback(socket.url):
            self.refused.append(socket.url)

    def console(self, message: ConsoleMessage) -> None:
        """Console errors count as page errors: a refused load (CSP, network) logs one."""
        if message.type == "error":
            self.page_errors.append(message.text)

    def __str__(self) -> str:
        return f"refused: {self.refused}, page errors: {self.page_errors}"

    def outside_loopback(self) -> list[str]:
        return [url for url in self.requested if not is_loopback(url)]


@asynccontextmanager
async def offline_page(profile_dir: Path) -> AsyncIterator[tuple[Page, Traffic]]:
    """A page in a fresh Chromium profile at ``profile_dir``, with its traffic recorded."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing; install it with `apt-get install chromium`")
    traffic = Traffic()
    async with async_playwright() as playwright:
        context: BrowserContext = await playwright.chromium.launch_persistent_context(
            profile_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            service_workers="block",
        )
        try:
            context.set_default_timeout(60_000)  # a loaded 2-core machine
            await context.route("**/*", traffic.route)
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("websocket", traffic.websocket)
            page.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
            page.on("console", traffic.console)
            yield page, traffic
        finally:
            await context.close()
