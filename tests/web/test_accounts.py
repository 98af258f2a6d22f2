"""Mail accounts in the browser: the progress bar of a first sync reaching 100%, pause and
resume, reconnecting after the server refused the stored login, removing (asked in the
page first), and connecting or reconnecting an account with an OAuth2 sign-in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest_asyncio
from playwright.async_api import Page, expect
from sqlalchemy import update

from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from core.settings import Settings
from tests.oauth.conftest import identity_provider, oauth_dovecot, oauth_smtp  # noqa: F401
from tests.support.app import RunningApp, free_port, serve
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.oauth import generic_provider_settings
from tests.support.oauth_provider import IdentityProvider
from tests.support.smtp_server import SmtpServer
from tests.support.sync import ADD, burst_worker, private_mailbox
from tests.web.helpers import append_numbered, browser, clean, screen, sign_in

NewUser = Callable[..., Awaitable[TestUser]]
expect.set_options(timeout=30_000)  # a loaded 2-core machine


async def mark_auth_failed(runtime: Runtime, account_id: str) -> None:
    """What the sync engine does when the server starts refusing the stored login."""
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(MailAccount)
            .where(MailAccount.id == uuid.UUID(account_id))
            .values(status=AccountStatus.AUTH_FAILED, last_error="The server refused the login.")
        )


async def open_accounts(page: Page) -> None:
    """The accounts screen drawn afresh (a status set in the database sends no event)."""
    await page.get_by_role("link", name="Inbox").click()
    await expect(page.locator("#messages")).to_be_visible()
    await page.get_by_role("link", name="Mail accounts").click()


async def test_progress_to_100_pause_resume_reconnect_and_remove(
    running_app: RunningApp,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Progress Co")  # ADVANCED: one account
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
        browser(tmp_path) as (page, traffic),
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        await append_numbered(box, "Note", 40, start)
        address = "rep@progress.example.com"
        added = await client.execute(
            ADD, {"input": {"emailAddress": address, "imap": box.imap_input()}}
        )
        account_id = added["addMailAccount"]["account"]["id"]

        await sign_in(page, running_app, user.token)
        await page.get_by_role("link", name="Mail accounts").click()
        account = page.locator("section.account", has_text=address)
        await account.get_by_label("Past mail").select_option("ALL")
        await account.get_by_role("button", name="Start sync").click()
        await expect(account.locator(".status")).to_have_text("SYNCING")
        await burst_worker(make_settings())
        await expect(account.locator(".progress-text")).to_have_text("INBOX: 40 of 40 (100%)")
        await expect(account.get_by_role("progressbar")).to_have_js_property("value", 100)
        await expect(account.locator(".status")).to_have_text("ACTIVE")
        await expect(account.locator(".message-count")).to_have_text("40 messages")
        await screen(page, "accounts-synced")

        await account.get_by_role("button", name="Pause").click()
        await expect(account.locator(".status")).to_have_text("PAUSED")
        await account.get_by_role("button", name="Resume").click()
        await expect(account.get_by_role("button", name="Pause")).to_be_visible()

        # The server refused the stored password: a new one, proven before it is kept.
        await mark_auth_failed(runtime, account_id)
        await open_accounts(page)
        await expect(account.locator(".status")).to_have_text("AUTH_FAILED")
        await expect(account.locator(".last-error")).to_have_text("The server refused the login.")
        password = account.get_by_label(f"New password for {address}")
        await password.fill("not-the-password")
        await account.get_by_role("button", name="Reconnect", exact=True).click()
        await expect(account.locator(".reconnect .field-error")).to_contain_text(
            "INVALID_CREDENTIALS"
        )
        await expect(password).to_have_attribute("aria-invalid", "true")
        await screen(page, "accounts-reconnect")
        await password.fill(box.password)
        await account.get_by_role("button", name="Reconnect", exact=True).click()
        await expect(account.locator(".status")).not_to_have_text("AUTH_FAILED")
        await expect(account.locator(".last-error")).to_have_count(0)

        # Remove asks in the page; Cancel keeps the account.
        await account.get_by_role("button", name="Remove", exact=True).click()
        confirm = account.get_by_role("group", name=f"Remove {address}")
        await expect(confirm).to_contain_text("and its synced mail?")
        await screen(page, "accounts-remove")
        await confirm.get_by_role("button", name="Cancel").click()
        await expect(account.get_by_role("button", name="Remove", exact=True)).to_be_focused()
        await account.get_by_role("button", name="Remove", exact=True).click()
        await confirm.get_by_role("button", name="Remove for good").click()
        await expect(page.locator("#accounts")).to_have_text("No mail accounts yet.")
        await expect(page.locator("#plan-limit")).to_have_text(
            "0 of 1 accounts on the ADVANCED plan."
        )
        await page.get_by_role("link", name="Inbox").click()
        await expect(page.locator("#more")).to_have_text(
            "No mail accounts yet: add one to see its mail here."
        )
        clean(traffic)


@pytest_asyncio.fixture
async def oauth_web_app(
    make_settings: Callable[..., Settings],
    identity_provider: IdentityProvider,  # noqa: F811
    oauth_dovecot: ImapServer,  # noqa: F811
    oauth_smtp: SmtpServer,  # noqa: F811
) -> AsyncIterator[RunningApp]:
    """An app with the GENERIC provider configured whose callback returns to the web app."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    identity_provider.redirect_uris.add(f"{base}/oauth/callback")
    overrides = generic_provider_settings(
        identity_provider, oauth_dovecot, oauth_smtp, f"{base}/oauth/callback"
    )
    settings = make_settings(**{**overrides, "oauth_app_url": f"{base}/"})
    async with serve(settings, port=port) as app:
        yield app
    identity_provider.reset()


async def test_connect_and_reconnect_with_an_oauth_sign_in(
    oauth_web_app: RunningApp,
    runtime: Runtime,
    new_user: NewUser,
    identity_provider: IdentityProvider,  # noqa: F811
    oauth_dovecot: ImapServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    user = await new_user(company="SSO Co")
    address = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    oauth_dovecot.add_user(address, "pw-unused")
    identity_provider.add_user(address, name="Ann")
    async with browser(tmp_path) as (page, traffic):
        await sign_in(page, oauth_web_app, user.token)
        await page.get_by_role("link", name="Mail accounts").click()
        await page.locator("#emailAddress").fill(address)  # the provider's login hint
        await screen(page, "accounts-oauth")
        await page.get_by_role("button", name="Sign in with Test SSO").click()
        # The provider approves and sends the browser back through /oauth/callback.
        account = page.locator("section.account", has_text=address)
        await expect(account.locator(".status")).to_have_text("READY")
        await expect(page.locator(".toast", has_text="Account connected")).to_be_visible()
        assert "accountId" not in page.url and page.url.endswith("#/accounts")

        [row] = await account.evaluate_all("(s) => s.map((e) => e.dataset.accountId)")
        await mark_auth_failed(runtime, row)
        await open_accounts(page)
        await expect(account.locator(".status")).to_have_text("AUTH_FAILED")
        await account.get_by_role("button", name="Reconnect with Test SSO").click()
        await expect(account.locator(".status")).not_to_have_text("AUTH_FAILED")
        await expect(page.locator(".toast", has_text="Account connected")).to_be_visible()
        clean(traffic)
