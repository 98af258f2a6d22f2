"""What the browser tests share: signing in, the page's traffic checks, messages to APPEND,
the axe-core check of a screen, and screenshots (on failure, and of each screen for the
README with ``make screenshots``)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Page

from tests.sending.helpers import add_sending_account
from tests.support.app import RunningApp
from tests.support.browser import Traffic, offline_page
from tests.support.graphql import GraphQLClient
from tests.support.smtp_server import SmtpServer
from tests.support.sync import Mailbox

T = TypeVar("T")
# A 1x1 PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
AXE = Path(__file__).with_name("vendor") / "axe-core-4.14.1" / "axe.min.js"
# `make screenshots` sets this: each screen's PNG is written there (docs/screenshots).
SCREENSHOTS_ENV = "MAILSYNC_SCREENSHOTS_DIR"
# Serious and critical violations fail a test; moderate and minor ones are not checked.
_RUN_AXE = """async () => {
  const result = await axe.run(document, { iframes: false, resultTypes: ["violations"] });
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
}"""


def html_message(
    subject: str,
    html: str,
    *,
    sender: str = "Ann Example <ann@example.com>",
    to: str = "rep@example.com",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 27, 10, tzinfo=UTC))
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.com>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content("plain version")
    message.add_alternative(html, subtype="html")
    return message


async def append_numbered(box: Mailbox, subject: str, count: int, start: datetime) -> None:
    """``count`` messages "<subject> 00", "<subject> 01"..., one minute apart, in INBOX."""
    dates = [start + timedelta(minutes=i) for i in range(count)]
    await box.admin.append_many(
        "INBOX",
        [
            (bytes(html_message(f"{subject} {i:02}", f"<p>{subject} {i}</p>", date=when)), when)
            for i, when in enumerate(dates)
        ],
    )


START_SYNC = "mutation($i: StartSyncInput!) { startSync(input: $i) { userErrors { code } } }"


async def start_sync(client: GraphQLClient, account_id: str, **choices: Any) -> None:
    """startSync of an added account: INBOX only and no past mail unless ``choices`` say."""
    values = {"accountId": account_id, "labels": ["INBOX"], "pastSync": "NONE", **choices}
    started = await client.execute(START_SYNC, {"i": values})
    assert started["startSync"]["userErrors"] == [], started


async def sending_account(
    client: GraphQLClient, box: Mailbox, smtp: SmtpServer, **choices: Any
) -> dict[str, Any]:
    """An account on ``box`` that sends through ``smtp``, its sync started (see start_sync)."""
    account = await add_sending_account(client, box, smtp, address=choices.pop("address", None))
    await start_sync(client, account["id"], **choices)
    return account


async def sign_in(page: Page, app: RunningApp, token: str) -> None:
    await page.goto(f"{app.base_url}/")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


def clean(traffic: Traffic, *expected: str) -> None:
    """Nothing beyond loopback, and no page error but the ``expected`` ones (a refused
    token's 401 is logged by the browser itself)."""
    assert traffic.outside_loopback() == []
    assert traffic.refused == []
    assert [e for e in traffic.page_errors if not any(x in e for x in expected)] == []


async def fill_account(page: Page, box: Mailbox, address: str, password: str) -> None:
    await page.locator("#emailAddress").fill(address)
    await page.locator("#imap-host").fill(box.server.host)
    await page.locator("#imap-port").fill(str(box.server.port))
    await page.locator("#imap-security").select_option("NONE")
    await page.locator("#imap-username").fill(box.username)
    await page.locator("#imap-password").fill(password)


async def eventually(probe: Callable[[], T], seconds: float = 30.0) -> T:
    """``probe()`` once it is truthy (what a browser did on its own time), else its last
    value after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    # Polling: the state is what Playwright's callbacks append to; there is no event to await.
    while not (value := probe()) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return value


@dataclass
class Beacon:
    """A loopback HTTP server that answers every GET with a 1x1 PNG and records its path:
    what a message's document really fetched (Playwright does not report the requests of a
    sandboxed srcdoc iframe, so the page's Traffic cannot tell)."""

    url: str
    paths: list[str] = field(default_factory=list)


@asynccontextmanager
async def beacon_server() -> AsyncIterator[Beacon]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            beacon.paths.append(request.split(b" ", 2)[1].decode())
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
                + f"Content-Length: {len(PIXEL)}\r\n\r\n".encode()
                + PIXEL
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    beacon = Beacon(f"http://127.0.0.1:{port}")
    try:
        yield beacon
    finally:
        server.close()
        await server.wait_closed()


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


async def assert_accessible(page: Page, screen: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation. It is evaluated
    through the DevTools protocol (the page's CSP allows no inline script), and the mail's
    own document in the sandboxed iframe is not ours to check."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    violations = await page.evaluate(_RUN_AXE)
    assert violations == [], f"{screen}: {json.dumps(violations, indent=1)}"


async def screen(page: Page, name: str) -> None:
    """A screen the README shows: checked with axe, and saved as ``name``.png when
    ``make screenshots`` asks for it."""
    await assert_accessible(page, name)
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:  # Playwright creates the folder
        # The viewport (1280x900): a full-page capture can miss the message iframe's paint.
        # Toasts of earlier steps are left out, and the caret (it blinks).
        await page.screenshot(
            path=Path(target) / f"{name}.png", style=".toast { display: none; }", caret="hide"
        )


@asynccontextmanager
async def browser(tmp_path: Path) -> AsyncIterator[tuple[Page, Traffic]]:
    """An offline page at 1280x900 that saves ``failure.png`` in the test's tmp_path when the
    test fails inside it (pytest prints that path with the failure)."""
    async with offline_page(tmp_path / "profile") as (page, traffic):
        await page.set_viewport_size({"width": 1280, "height": 900})
        try:
            yield page, traffic
        except BaseException:
            shot = tmp_path / "failure.png"
            try:
                await page.screenshot(path=shot, full_page=True)
                print(f"screenshot of the failure: {shot}")
            except Exception as error:  # the browser may be what failed
                print(f"no screenshot of the failure: {error}")
            raise
