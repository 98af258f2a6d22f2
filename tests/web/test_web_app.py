"""The Sales Inbox web app in a real browser (Debian's Chromium, offline): a person signs
in, connects a mailbox, syncs it, reads and marks mail, sends as one of their addresses
and, as an admin, sees the team's usage; nothing loads from beyond this server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import expect

from core.settings import Settings
from tests.support.app import RunningApp, free_port, serve
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import running_smtp_server
from tests.support.sync import burst_worker, connect_and_start, private_mailbox
from tests.web.helpers import (
    browser,
    clean,
    fill_account,
    html_message,
    screen,
    sending_account,
    sign_in,
)

NewUser = Callable[..., Awaitable[TestUser]]
expect.set_options(timeout=30_000)  # a loaded 2-core machine


async def test_page_is_served_with_a_strict_policy(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    page = await http.get(f"{running_app.base_url}/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await http.get(f"{running_app.base_url}/app/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    vendored = await http.get(f"{running_app.base_url}/app/vendor/graphql-ws-5.16.2/client.mjs")
    assert vendored.status_code == 200


async def test_a_bad_token_is_refused_and_a_good_one_shows_who_and_which_plan(
    running_app: RunningApp, new_user: NewUser, tmp_path: Path
) -> None:
    user = await new_user(company="Browser Co")
    async with browser(tmp_path) as (page, traffic):
        await sign_in(page, running_app, "ms_not-a-token")
        await expect(page.get_by_role("alert")).to_contain_text("not valid")
        await screen(page, "sign-in")
        await page.get_by_label("API token").fill(user.token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#who")).to_contain_text("Browser Co")
        await expect(page.locator("#who")).to_contain_text("ADVANCED")
        # The token is in the tab's sessionStorage, never in the address bar.
        assert user.token not in page.url
        assert await page.evaluate("sessionStorage.getItem('mailsync.token')") == user.token
        clean(traffic, "status of 401")


async def test_connect_sync_read_and_send_from_the_browser(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Flow Co")
    settings = make_settings(send_retry_seconds=0.05)
    async with (
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        now = datetime.now(UTC)
        await box.admin.append_many(
            "INBOX",
            [
                (bytes(html_message("Quarterly numbers", "<p>See the <b>figures</b>.</p>")), now),
                (bytes(html_message("Lunch on Friday?", "<p>At noon?</p>")), now),
            ],
        )
        await box.admin.create("Archive")
        await sign_in(page, running_app, user.token)
        await page.get_by_role("link", name="Mail accounts").click()
        await expect(page.locator("#plan-limit")).to_have_text(
            "0 of 1 accounts on the ADVANCED plan."
        )

        # Nothing listening: said next to the server's fields. A wrong password: next to
        # the password field, and the earlier error is gone.
        await fill_account(page, box, "rep@example.com", "wrong-password")
        await page.locator("#with-smtp").uncheck()
        await page.locator("#imap-port").fill(str(free_port()))
        await page.locator("#add-submit").click()
        errors = page.locator(".field-error:not(:empty), #add-error:not(:empty)")
        await expect(errors).to_have_count(1)
        await expect(page.locator("#imap-host-error")).to_contain_text("SERVER_UNREACHABLE")
        await expect(page.locator("#imap-host")).to_have_attribute("aria-invalid", "true")
        await page.locator("#imap-port").fill(str(box.server.port))
        await page.locator("#add-submit").click()
        await expect(page.locator("#imap-password-error")).to_contain_text("INVALID_CREDENTIALS")
        await expect(errors).to_have_count(1)
        await screen(page, "add-account")
        await page.locator("#imap-password").fill(box.password)
        await page.locator("#add-submit").click()
        account = page.locator("section.account", has_text="rep@example.com")
        await expect(account.locator(".status")).to_have_text("READY")
        await expect(page.locator("#plan-limit")).to_have_text(
            "1 of 1 accounts on the ADVANCED plan."
        )

        # Start sync: INBOX preselected, shared with the company, all past mail.
        await account.get_by_label("Archive (archive)").check()  # INBOX is preselected
        await account.get_by_label("Sharing").select_option("SHARED")
        await account.get_by_label("Past mail").select_option("ALL")
        await account.get_by_role("button", name="Start sync").click()
        await expect(account.locator(".status")).to_have_text("SYNCING")
        await burst_worker(settings)
        await expect(account.locator(".status")).to_have_text("ACTIVE")  # pushed live
        await expect(account).to_contain_text("2 messages")
        await screen(page, "accounts")

        await page.get_by_role("link", name="Inbox").click()
        messages = page.locator("#messages li[data-id]")
        await expect(messages).to_have_count(2)
        await messages.filter(has_text="Quarterly numbers").get_by_role("button").click()
        frame = page.frame_locator("#reader iframe")
        await expect(frame.locator("body")).to_contain_text("figures")
        await screen(page, "inbox")
        # The message document runs no script and has an opaque origin.
        assert await page.locator("#reader iframe").get_attribute("sandbox") == ""
        await expect(page.locator("#toggle-read")).to_have_text("Mark unread")
        await page.locator("#toggle-read").click()
        await expect(page.locator("#toggle-read")).to_have_text("Mark read")
        await expect(
            page.locator("#messages li.unread", has_text="Quarterly numbers")
        ).to_have_count(1)

        # Unread only, then search.
        await page.locator("#unread-only").check()
        await expect(messages).to_have_count(2)  # both unread again
        await page.locator("#unread-only").uncheck()
        await page.locator("#search").fill("lunch")
        await page.get_by_role("button", name="Search").click()
        await expect(messages).to_have_count(1)
        await expect(messages).to_contain_text("Lunch on Friday?")

        # Archive: gone from the inbox at once, in the Archive folder on the server after
        # the account's next sync.
        await messages.get_by_role("button").click()
        await expect(page.locator("#reader h2")).to_have_text("Lunch on Friday?")
        await page.locator("#archive").click()
        await expect(page.locator("#reader")).to_contain_text("Archived.")
        await expect(messages).to_have_count(0)
        await burst_worker(settings)
        [archived] = await box.admin.fetch_raw("Archive")
        assert b"Subject: Lunch on Friday?" in archived
        clean(traffic)


async def test_compose_preselects_the_default_and_shows_the_status_live(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Send Co", plan=None)
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        with running_smtp_server() as smtp:
            account = await sending_account(client, box, smtp)
            async with browser(tmp_path) as (page, traffic):
                await sign_in(page, running_app, user.token)
                await page.get_by_role("link", name="Compose").click()
                # The first account became the default: preselected, no note.
                await expect(page.locator("#from")).to_have_value(account["id"])
                await expect(page.locator("#no-default")).to_have_count(0)
                await page.locator("#to").fill("buyer@example.org")
                await page.locator("#subject").fill("Proposal")
                await page.locator("#body").fill("Please find the proposal below.")
                await page.locator("#send").click()
                row = page.locator("#outbox tr", has_text="Proposal")
                await expect(row.locator(".status")).to_have_text("QUEUED")
                await burst_worker(make_settings(send_retry_seconds=0.05))
                await expect(row.locator(".status")).to_have_text("SENT")  # pushed live
                await screen(page, "compose")
                assert [b"Subject: Proposal" in m.data for m in smtp.received] == [True]

                # No default: the note says what that means for automated emails.
                await page.get_by_role("link", name="Mail accounts").click()
                await page.get_by_role("button", name="Clear default").click()
                await expect(page.get_by_role("button", name="Make default")).to_be_visible()
                await page.get_by_role("link", name="Compose").click()
                await expect(page.locator("#no-default")).to_contain_text("no default account")
                clean(traffic)


async def test_admin_sees_the_team_usage_and_others_do_not(
    running_app: RunningApp, new_user: NewUser, dovecot: ImapServer, tmp_path: Path
) -> None:
    admin = await new_user(company="Usage Co", admin=True)
    member = await new_user(company="Usage Co")
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        await connect_and_start(GraphQLClient(http, running_app.graphql_url, member.token), box)
        await sign_in(page, running_app, admin.token)
        await page.get_by_role("link", name="Team usage").click()
        table = page.locator("#usage")
        member_row = table.locator("tr", has_text=member.email)
        await expect(member_row).to_contain_text("1 of 1")
        await expect(member_row.locator(".status")).to_have_text("SYNCING")
        await expect(table).to_contain_text(admin.email)
        await screen(page, "team-usage")
        await page.get_by_role("button", name="Sign out").click()
        await sign_in(page, running_app, member.token)
        await expect(page.locator("#who")).to_contain_text("Usage Co")
        await expect(page.get_by_role("link", name="Team usage")).to_have_count(0)
        clean(traffic)


async def test_web_app_can_be_turned_off(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient
) -> None:
    async with serve(make_settings(web_app=False)) as app:
        assert (await http.get(f"{app.base_url}/")).status_code == 404
        assert (await http.get(f"{app.base_url}/app/js/app.js")).status_code == 404


async def test_cors_is_off_unless_origins_are_configured(
    make_settings: Callable[..., Settings], running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    preflight = {
        "origin": "https://crm.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    default = await http.options(running_app.graphql_url, headers=preflight)
    assert "access-control-allow-origin" not in default.headers
    async with serve(make_settings(cors_origins="https://crm.example.com")) as app:
        allowed = await http.options(app.graphql_url, headers=preflight)
        other = await http.options(
            app.graphql_url, headers={**preflight, "origin": "https://evil.example.net"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://crm.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers  # a header token, no cookies
    assert other.headers.get("access-control-allow-origin") != "https://evil.example.net"
