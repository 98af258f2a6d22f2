"""Sending files: sendEmail takes attachments as a GraphQL multipart request; they arrive
intact at the SMTP server and in the Sent copy, and too much is refused as it streams."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from core.models import SendStatus, SentCopy
from core.runtime import Runtime
from core.settings import Settings
from tests.inbox.test_attachments import (
    BINARY,
    HTML_ATTACHMENT,
    PNG,
    TEXT,
    mail_with_parts,
)
from tests.sending.helpers import (
    SEND,
    add_sending_account,
    outgoing_rows,
    parse,
    run_worker,
    send,
)
from tests.support.app import RunningApp, serve
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import INBOX
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.sync import private_mailbox, start_and_sync

NewUser = Callable[..., Awaitable[TestUser]]
PDF = b"%PDF-1.4\n" + random.Random(7).randbytes(300_000)
CSV = "name;amount\r\nMüller;12,50 €\r\n".encode()


def multipart_send(files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    """The multipart request spec: operations, a map of files to variables, the files."""
    operations = {
        "query": SEND,
        "variables": {
            "input": {
                "to": ["ann@example.org"],
                "subject": "Offer",
                "bodyText": "Attached.",
                "attachments": [None] * len(files),
            }
        },
    }
    mapping = {str(i): [f"variables.input.attachments.{i}"] for i in range(len(files))}
    return {
        "data": {"operations": json.dumps(operations), "map": json.dumps(mapping)},
        "files": {str(i): (name, data, kind) for i, (name, data, kind) in enumerate(files)},
    }


async def test_two_attachments_arrive_intact_and_are_in_the_sent_copy(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await add_sending_account(client, box, smtp_server)
        files = [("offer.pdf", PDF, "application/pdf"), ("Preise März.csv", CSV, "text/csv")]
        response = await http.post(
            running_app.graphql_url,
            headers={"Authorization": f"Bearer {owner.token}"},
            **multipart_send(files),
        )
        assert response.status_code == 200, response.text
        payload = response.json()["data"]["sendEmail"]
        assert payload["userErrors"] == [], payload
        await run_worker(make_settings)
        [row] = await outgoing_rows(runtime)
        assert row.status is SendStatus.SENT
        # Stored until sent and filed, then removed: the copy in Sent is the user's.
        assert row.sent_copy is SentCopy.APPENDED
        assert row.mime == b""

        [received] = smtp_server.received
        [sent_copy] = await box.admin.fetch_raw("Sent")
        for raw in (received.data, sent_copy):
            message = parse(raw)
            got = {
                part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
                for part in message.iter_attachments()
            }
            assert got == {
                "offer.pdf": ("application/pdf", PDF),
                "Preise März.csv": ("text/csv", CSV),
            }
            body = message.get_body(("plain",))
            assert body is not None and body.get_content().strip() == "Attached."


async def test_attachments_over_the_limit_are_refused_while_they_stream(
    runtime: Runtime,
    new_user: NewUser,
    http: httpx.AsyncClient,
    make_settings: Callable[..., Settings],
) -> None:
    owner = await new_user()
    limit = 64 * 1024
    settings = make_settings(max_attachment_bytes=limit, max_request_bytes=16 * 1024)
    async with serve(settings) as app:
        headers = {"Authorization": f"Bearer {owner.token}"}
        # Under the request limit but over the attachments' one: refused as they are read.
        big = multipart_send(
            [("a.bin", bytes(limit // 2 + 10), ""), ("b.bin", bytes(limit // 2), "")]
        )
        refused = await http.post(app.graphql_url, headers=headers, **big)
        assert refused.status_code == 200
        [error] = refused.json()["data"]["sendEmail"]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", "attachments[1]")

        # Far over, with no Content-Length to trust: the 413 comes while the body is
        # still arriving (the client has sent 2 MB of a body it never finishes).
        prefix = multipart_send([("x.bin", b"", "application/octet-stream")])
        built = httpx.Request("POST", app.graphql_url, headers=headers, **prefix)
        boundary = built.headers["content-type"].split("boundary=")[1].encode()
        head = built.read().split(b"\r\n--" + boundary + b"--")[0]
        host, port = app.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                + f"Authorization: Bearer {owner.token}\r\n".encode()
                + f"Content-Type: {built.headers['content-type']}\r\n\r\n".encode()
            )
            for chunk in [head, *[bytes(256 * 1024)] * 8]:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 20)
            assert status.startswith(b"HTTP/1.1 413"), status
        finally:
            writer.close()
    assert await outgoing_rows(runtime) == []


async def test_a_forward_carries_the_original_attachments(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    dovecot: ImapServer,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    owner = await new_user()
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await box.admin.append("INBOX", mail_with_parts("parts"))
        account = await add_sending_account(client, box, smtp_server)
        await start_and_sync(client, runtime, account["id"])
        edges = (await client.execute(INBOX))["inbox"]["edges"]
        [original] = [e["node"]["id"] for e in edges if e["node"]["subject"] == "parts"]
        forwarded = await send(client, subject="Fwd: parts", forwardAttachmentsOf=original)
        assert forwarded["userErrors"] == [], forwarded
        await run_worker(make_settings)
        [received] = smtp_server.received
        got = {
            part.get_filename(): part.get_payload(decode=True)
            for part in parse(received.data).iter_attachments()
        }
        assert got == {
            "logo.png": PNG,
            "Angebot Müller.bin": BINARY,
            "notes.txt": TEXT,
            "page.html": HTML_ATTACHMENT,
        }
        unknown = await send(client, forwardAttachmentsOf="not-a-message")
        assert [e["code"] for e in unknown["userErrors"]] == ["NOT_FOUND"]
