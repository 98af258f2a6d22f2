"""Sending from the browser: a reply from the address the mail came to (not the default),
with a file attached, delivered once; a forward that carries the original's attachment
without the browser downloading it; automated sending follows the default account as the
user sets and clears it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from core.models import Plan
from core.settings import Settings
from tests.sending.helpers import parse, send_automated
from tests.support.app import RunningApp, serve
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import running_smtp_server
from tests.support.sync import burst_worker, private_mailbox
from tests.web.helpers import browser, clean, html_message, screen, sending_account, sign_in

NewUser = Callable[..., Awaitable[TestUser]]
expect.set_options(timeout=30_000)  # a loaded 2-core machine

CONTRACT = b"%PDF-1.4\ncontract terms\n" + bytes(range(256)) * 8
NOTES = "Notes on §4: fine by us.\n".encode()


async def open_contract(page: Page) -> None:
    await page.get_by_role("link", name="Inbox").click()
    await page.locator("#messages li", has_text="Contract draft").get_by_role("button").click()


def attachments(raw: bytes) -> dict[str | None, bytes]:
    message = parse(raw)
    return {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }


async def test_reply_and_forward_with_files_and_the_default_account_followed(
    running_app: RunningApp,
    new_user: NewUser,
    dovecot: ImapServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    user = await new_user(company="Send Co", plan=Plan.PROFESSIONAL)
    settings = make_settings(send_retry_seconds=0.05)
    async with (
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path / "a") as first_box,
        private_mailbox("dovecot", dovecot, tmp_path / "b") as second_box,
    ):
        client = GraphQLClient(http, running_app.graphql_url, user.token)
        original = html_message(
            "Contract draft",
            "<p>The draft is attached.</p>",
            sender="Cara Client <cara@example.org>",
            to="beta@example.com",
            message_id="<contract-1@example.org>",
        )
        original["Cc"] = "Dan Partner <dan@example.org>, beta@example.com"
        original.add_attachment(CONTRACT, "application", "pdf", filename="contract.pdf")
        await second_box.admin.append("INBOX", bytes(original))
        with running_smtp_server() as smtp:
            await sending_account(client, first_box, smtp, address="alpha@example.com")
            beta = await sending_account(
                client, second_box, smtp, address="beta@example.com", pastSync="ALL"
            )
            await burst_worker(settings)

            async with browser(tmp_path) as (page, traffic):
                await sign_in(page, running_app, user.token)
                await open_contract(page)
                await page.get_by_role("link", name="Reply", exact=True).click()

                # The reply goes from the address the mail came to, not the default (alpha).
                await expect(page.locator("#compose-title")).to_have_text("Reply")
                await expect(page.get_by_label("From")).to_have_value(beta["id"])
                await expect(page.get_by_label("To", exact=False).first).to_have_value(
                    "cara@example.org"
                )
                await expect(page.get_by_label("Subject")).to_have_value("Re: Contract draft")
                await page.get_by_label("Message").fill("Thanks, my notes are attached.")
                await page.get_by_label("Attach files").set_input_files(
                    files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": NOTES}]
                )
                await screen(page, "reply")
                await page.get_by_role("button", name="Send").click()
                row = page.locator("#outbox tr", has_text="Re: Contract draft")
                await expect(row.locator(".status")).to_have_text("QUEUED")
                await burst_worker(settings)
                await expect(row.locator(".status")).to_have_text("SENT")  # pushed live
                [reply] = [m for m in smtp.received if b"Re: Contract draft" in m.data]
                assert reply.mail_from == "beta@example.com"
                assert parse(reply.data)["In-Reply-To"] == "<contract-1@example.org>"
                assert attachments(reply.data) == {"notes.txt": NOTES}

                # Reply all: the sender and the other recipients, never the user's own address.
                await open_contract(page)
                await page.get_by_role("link", name="Reply all").click()
                await expect(page.locator("#compose-title")).to_have_text("Reply all")
                await expect(page.get_by_label("To", exact=False).first).to_have_value(
                    "cara@example.org"
                )
                await expect(page.get_by_label("Cc", exact=True)).to_have_value("dan@example.org")

                # A forward carries the original's attachment, fetched by the server.
                await open_contract(page)
                await page.get_by_role("link", name="Forward").click()
                await expect(page.locator("#compose-title")).to_have_text("Forward")
                await expect(page.locator("#forward-attachments")).to_be_checked()
                await expect(page.locator("#forwarded")).to_contain_text("contract.pdf")
                await expect(page.get_by_label("Message")).to_have_value(
                    re.compile(
                        r"-- Forwarded message --.*\nFrom: Cara Client <cara@example.org>", re.S
                    )
                )
                await screen(page, "forward")
                await page.get_by_label("To", exact=False).first.fill("dan@example.org")
                await page.get_by_role("button", name="Send").click()
                forwarded_row = page.locator("#outbox tr", has_text="Fwd: Contract draft")
                await expect(forwarded_row.locator(".status")).to_have_text("QUEUED")
                await burst_worker(settings)
                await expect(forwarded_row.locator(".status")).to_have_text("SENT")
                [forward] = [m for m in smtp.received if b"Fwd: Contract draft" in m.data]
                assert forward.rcpt_tos == ["dan@example.org"]
                assert attachments(forward.data) == {"contract.pdf": CONTRACT}

                # Automated emails follow the default account as it is set and cleared.
                async def automated_sender() -> str | None:
                    sent = await send_automated(client, subject="Reminder")
                    if sent["userErrors"]:
                        return str(sent["userErrors"][0]["code"])
                    await burst_worker(settings)
                    return smtp.received[-1].mail_from

                assert await automated_sender() == "alpha@example.com"  # the first account
                await page.get_by_role("link", name="Mail accounts").click()
                second = page.locator("section.account", has_text="beta@example.com")
                await second.get_by_role("button", name="Make default").click()
                await expect(second.locator(".default-mark")).to_have_text("Default sender")
                assert await automated_sender() == "beta@example.com"
                await second.get_by_role("button", name="Clear default").click()
                await expect(page.locator(".default-mark")).to_have_count(0)
                assert await automated_sender() == "NO_DEFAULT_ACCOUNT"
                assert len(smtp.received) == 4  # each message delivered once
                clean(traffic)


async def test_files_over_the_upload_limit_are_refused_with_a_message(
    make_settings: Callable[..., Settings],
    new_user: NewUser,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    user = await new_user(company="Big Files Co")
    async with (
        serve(make_settings(max_attachment_bytes=4096)) as app,
        httpx.AsyncClient() as http,
        private_mailbox("dovecot", dovecot, tmp_path) as box,
    ):
        client = GraphQLClient(http, app.graphql_url, user.token)
        with running_smtp_server() as smtp:
            await sending_account(client, box, smtp)
            async with browser(tmp_path) as (page, traffic):
                await sign_in(page, app, user.token)
                await page.get_by_role("link", name="Compose").click()
                await page.get_by_label("To", exact=False).first.fill("buyer@example.org")
                await page.get_by_label("Subject").fill("Too big")
                await page.get_by_label("Attach files").set_input_files(
                    files=[
                        {
                            "name": "big.bin",
                            "mimeType": "application/octet-stream",
                            "buffer": bytes(20_000),
                        }
                    ]
                )
                await page.get_by_role("button", name="Send").click()
                await expect(page.locator("#send-error")).to_contain_text("more than 4096 bytes")
                await expect(page.get_by_role("button", name="Send")).to_be_enabled()
                await expect(page.locator("#outbox tr")).to_have_count(0)
                clean(traffic)
            assert smtp.received == []
