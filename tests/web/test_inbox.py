"""The inbox in a real browser: conversations of every address or of one, endless scrolling
over keyset pages, new mail appearing live, a conversation's messages, and a hostile
message that runs nothing and loads nothing until the user asks for its remote images."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.async_api import Page, WebSocketRoute, expect

from core.models import Plan
from core.settings import Settings
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import ADD, burst_worker, connect_and_start, private_mailbox
from tests.web.helpers import (
    PIXEL,
    append_numbered,
    beacon_server,
    browser,
    clean,
    eventually,
    html_message,
    screen,
    sign_in,
    start_sync,
)

NewUser = Callable[..., Awaitable[TestUser]]
expect.set_options(timeout=30_000)  # a loaded 2-core machine

PAGE = 30  # inbox.js's page size
SYNC_NOW = "mutation($id: ID!) { syncNow(accountId: $id) { userErrors { code } } }"
ACCOUNT_ADDRESSES = "query { mailAccounts { id emailAddress } }"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


async def test_conversations_of_every_address_or_one_scroll_and_arrive_live(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Threads Co", plan=Plan.PROFESSIONAL)  # two accounts
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path / "a") as leads,
        private_mailbox("dovecot", dovecot, tmp_path / "b") as support,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        # 33 single-message conversations in one mailbox, one of two messages in the other.
        await append_numbered(leads, "Lead", 33, start)
        question = html_message(
            "Pricing question", "<p>How much?</p>", message_id="<q1@example.com>", date=start
        )
        answer = html_message(
            "Re: Pricing question",
            "<p>Per seat.</p>",
            sender="Bo Buyer <bo@example.org>",
            in_reply_to="<q1@example.com>",
            date=start + timedelta(minutes=5),
        )
        await support.admin.append_many(
            "INBOX", [(bytes(question), start), (bytes(answer), start + timedelta(minutes=5))]
        )
        leads_id = await connect_and_start(client, leads)
        support_id = await connect_and_start(client, support)
        settings = make_settings()
        await burst_worker(settings)
        addresses = {
            a["id"]: a["emailAddress"]
            for a in (await client.execute(ACCOUNT_ADDRESSES))["mailAccounts"]
        }

        await sign_in(page, running_app, user.token)
        rows = page.locator("#messages li[data-id]")
        await expect(rows).to_have_count(PAGE)  # the first keyset page
        await expect(rows.first).to_contain_text("Lead 32")  # newest first
        await screen(page, "inbox-all")
        await page.locator("#more").scroll_into_view_if_needed()  # endless scrolling
        await expect(rows).to_have_count(34)
        await expect(page.locator("#more")).to_have_text("No more conversations.")

        # One address: its one conversation, of two messages, opens at the latest.
        await page.get_by_label("Account").select_option(str(support_id))
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("Pricing question")
        await expect(rows).to_contain_text("(2)")
        await rows.get_by_role("button").click()
        reader = page.locator("#reader")
        await expect(reader.locator("h2")).to_have_text("Re: Pricing question")
        thread = reader.get_by_role("list", name="Conversation, 2 messages")
        await expect(thread.locator("> li")).to_have_count(2)
        await expect(page.frame_locator("#reader iframe").locator("body")).to_contain_text(
            "Per seat"
        )
        await page.locator("#toggle-flag").click()
        await expect(page.locator("#toggle-flag")).to_have_text("Unflag")
        await expect(rows.locator(".star")).to_be_visible()
        await screen(page, "conversation")
        await thread.get_by_role("link", name="Ann Example").click()  # the earlier message
        await expect(page.frame_locator("#reader iframe").locator("body")).to_contain_text(
            "How much?"
        )
        assert addresses[str(support_id)] in await reader.inner_text()

        # Back to every address; new mail arrives without a reload, at the top.
        await page.get_by_label("Account").select_option("")
        await expect(rows).to_have_count(PAGE)
        await page.evaluate("window.notReloaded = true")
        fresh = start + timedelta(days=3)
        await leads.admin.append(
            "INBOX", bytes(html_message("Fresh lead", "<p>Hi!</p>", date=fresh)), when=fresh
        )
        assert (await client.execute(SYNC_NOW, {"id": str(leads_id)}))["syncNow"][
            "userErrors"
        ] == []
        await burst_worker(settings)
        await expect(rows.first).to_contain_text("Fresh lead")
        await expect(page.locator("#inbox-status")).to_have_text("1 new conversation.")
        assert await page.evaluate("window.notReloaded") is True
        clean(traffic)


def hostile_message(beacon: str) -> bytes:
    """Scripts, handlers, a javascript: link, a form, a frame, CSS and a tracking pixel that
    would each reach ``beacon/<what>`` if anything let them; an inline image; a PDF."""
    html = f"""<p>Hello <b>rep</b>, the offer is attached.</p>
<script>top.hacked = 1; fetch("{beacon}/script"); new Image().src = "{beacon}/script-image"</script>
<img src="x" onerror="top.hacked = 2; fetch('{beacon}/onerror')">
<a href="javascript:top.hacked=3">click me</a>
<form action="{beacon}/form"><button>Go</button></form>
<iframe src="{beacon}/frame"></iframe>
<div style="background:url({beacon}/css)">styled</div>
<img src="cid:logo@example.com" alt="our logo">
<img src="{beacon}/remote-pixel" alt="tracker">"""
    message = html_message("Offer attached", html)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html_part.add_related(PIXEL, "image", "png", cid="<logo@example.com>")
    message.add_attachment(PDF, "application", "pdf", filename="offer.pdf")
    return bytes(message)


async def test_a_hostile_message_runs_nothing_and_remote_images_wait_for_the_user(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Safe Co")
    async with (
        httpx.AsyncClient() as http,
        beacon_server() as beacon,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        await box.admin.append("INBOX", hostile_message(beacon.url))
        await connect_and_start(client, box)
        await burst_worker(make_settings())

        await sign_in(page, running_app, user.token)
        await page.locator("#messages li[data-id]").get_by_role("button").click()
        frame = page.frame_locator("#reader iframe")
        await expect(frame.locator("body")).to_contain_text("the offer is attached")
        assert await page.locator("#reader iframe").get_attribute("sandbox") == ""
        # The inline image is shown through its signed URL.
        logo = frame.get_by_alt_text("our logo")
        await expect(logo).to_have_attribute("src", re.compile(r"/attachments/"))
        await expect(logo).to_have_js_property("naturalWidth", 1)  # loaded
        await expect(frame.get_by_text("click me")).to_be_visible()
        assert await frame.get_by_text("click me").get_attribute("href") is None  # javascript:
        await screen(page, "message")
        assert await page.evaluate("typeof window.hacked") == "undefined"
        assert beacon.paths == []

        # Remote images only once asked for: then the pixel loads, and nothing else.
        await page.get_by_role("button", name="Show remote images").click()
        tracker = frame.get_by_alt_text("tracker")
        await expect(tracker).to_have_js_property("naturalWidth", 1)
        assert beacon.paths == ["/remote-pixel"]
        assert await page.evaluate("typeof window.hacked") == "undefined"

        # The attachment downloads byte for byte.
        link = page.get_by_role("link", name=re.compile("offer.pdf"))
        async with page.expect_download() as download_info:
            await link.click()
        download = await download_info.value
        assert download.suggested_filename == "offer.pdf"
        assert await asyncio.to_thread(Path(await download.path()).read_bytes) == PDF
        clean(traffic)

        # Minutes later its signed URL may have expired: a click asks for a fresh one first.
        # (Playwright's clock is a script it puts in every frame: the message's sandboxed
        # frame refuses it, and says so on the console.)
        asked: list[str] = []
        page.on(
            "request", lambda r: asked.append(r.post_data or "") if r.method == "POST" else None
        )
        await page.clock.install()
        await page.clock.fast_forward("05:00")
        async with page.expect_download() as download_info:
            await link.click()
        download = await download_info.value
        assert await asyncio.to_thread(Path(await download.path()).read_bytes) == PDF
        assert [q for q in asked if "query Links" in q] != []
        clean(traffic, "Blocked script execution in 'about:srcdoc'")


async def tab_until(page: Page, selector: str, presses: int = 30) -> None:
    """Tab through the page until the focus is inside ``selector``."""
    for _ in range(presses):
        if await page.evaluate(f"!!document.activeElement.closest({selector!r})"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{presses} tabs did not reach {selector}")


async def test_the_inbox_works_from_the_keyboard_and_mail_goes_to_archive_trash_and_away(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Keys Co")
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        await append_numbered(box, "Keyboard", 2, datetime(2026, 11, 3, tzinfo=UTC))
        await box.admin.create("Archive")
        await box.admin.create("Trash")
        await connect_and_start(client, box, labels=["INBOX", "Archive", "Trash"])
        await burst_worker(make_settings())

        await page.goto(f"{running_app.base_url}/")
        await expect(page.get_by_label("API token")).to_be_focused()
        await page.keyboard.type(user.token)
        await page.keyboard.press("Enter")
        rows = page.locator("#messages li[data-id]")
        await expect(rows).to_have_count(2)
        await tab_until(page, "#messages")
        await expect(rows.first.get_by_role("button")).to_be_focused()
        await page.keyboard.press("Enter")  # opens it; the focus moves to its heading
        heading = page.locator("#reader h2")
        await expect(heading).to_have_text("Keyboard 01")
        await expect(heading).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.locator("#archive")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#reader")).to_contain_text("Archived.")
        await expect(rows).to_have_count(1)

        # Archive, then Trash, then gone for good, on the server too.
        folder = page.get_by_label("Folder")
        for name, buttons, done in [
            ("ARCHIVE", ["Delete"], "Moved to Trash."),
            (
                "TRASH",
                ["Delete for good", "Cancel", "Delete for good", "Yes, delete for good"],
                "Deleted for good.",
            ),
        ]:
            await folder.select_option(name)
            await expect(rows).to_have_count(1)
            await expect(rows).to_contain_text("Keyboard 01")
            await rows.get_by_role("button").click()
            for button in buttons:  # deleting for good is asked first; Cancel keeps it
                await page.locator("#reader").get_by_role("button", name=button, exact=True).click()
            await expect(page.locator("#reader")).to_contain_text(done)
            await expect(rows).to_have_count(0)
        await burst_worker(make_settings())
        assert await box.admin.fetch_raw("Archive") == []
        assert await box.admin.fetch_raw("Trash") == []
        assert len(await box.admin.fetch_raw("INBOX")) == 1
        clean(traffic)


async def test_a_teammates_shared_mail_is_read_only(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    teammate = await new_user(company="Team Co")
    user = await new_user(company="Team Co")
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, teammate.token)
        await append_numbered(box, "Shared lead", 1, datetime(2026, 11, 4, tzinfo=UTC))
        added = await client.execute(
            ADD, {"input": {"emailAddress": "team@example.com", "imap": box.imap_input()}}
        )
        account_id = added["addMailAccount"]["account"]["id"]
        await start_sync(client, account_id, sharing="SHARED", pastSync="ALL")
        await burst_worker(make_settings())

        await sign_in(page, running_app, user.token)
        await page.locator("#messages li", has_text="Shared lead 00").get_by_role("button").click()
        reader = page.locator("#reader")
        await expect(reader).to_contain_text("read-only")
        await expect(reader.get_by_role("link", name="Reply", exact=True)).to_be_visible()
        for control in ("#archive", "#delete", "#toggle-read", "#toggle-flag"):
            await expect(reader.locator(control)).to_have_count(0)
        await expect(page.locator("#messages li.unread")).to_have_count(1)  # not marked read
        clean(traffic)


async def test_mail_that_arrived_while_the_websocket_was_down_shows_on_reconnect(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Flaky Net Co")
    sockets: list[WebSocketRoute] = []
    reconnect = asyncio.Event()

    async def through(socket: WebSocketRoute) -> None:
        """Each websocket to the API, passed on; the ones after the first wait for the test."""
        sockets.append(socket)
        if len(sockets) > 1:
            await reconnect.wait()
        socket.connect_to_server()

    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        await append_numbered(box, "Before", 1, datetime(2026, 11, 5, tzinfo=UTC))
        account_id = await connect_and_start(client, box)
        settings = make_settings()
        await burst_worker(settings)
        await page.route_web_socket(re.compile(r"/graphql$"), through)

        await sign_in(page, running_app, user.token)
        rows = page.locator("#messages li[data-id]")
        await expect(rows).to_have_count(1)
        assert await eventually(lambda: sockets)  # subscribed to syncCompleted
        await page.evaluate("window.notReloaded = true")
        await sockets[0].close(code=1012, reason="service restart")  # retried
        assert await eventually(lambda: len(sockets) > 1)  # the client tries again

        # Mail arrives and is synced while no socket is open: its event reaches nobody.
        await append_numbered(box, "While away", 1, datetime(2026, 11, 6, tzinfo=UTC))
        assert (await client.execute(SYNC_NOW, {"id": str(account_id)}))["syncNow"][
            "userErrors"
        ] == []
        await burst_worker(settings)
        await expect(rows).to_have_count(1)
        reconnect.set()
        await expect(rows.first).to_contain_text("While away 00")  # caught up on reconnect
        assert await page.evaluate("window.notReloaded") is True
        clean(traffic)
