"""Attachments and inline images, downloaded through signed URLs from real IMAP servers:
the bytes are what was APPENDed, links are refused when forged, expired or another
company's, a message gone from the server is 410 (never another message's part), and a
25 MB attachment streams without the API holding it."""

from __future__ import annotations

import base64
import binascii
import gc
import hashlib
import random
import re
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from core.attachments.links import DownloadLinks
from core.mail.parsing import parse_message
from core.models import Message
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import Mailbox, connect_and_start, private_mailbox, sync_once
from tests.sync.test_renumbering import recreate

ATTACHMENTS = """
query($id: ID!) {
  message(id: $id) {
    id subject isRead bodyHtml(inlineImages: true)
    plain: bodyHtml
    attachments { id filename contentType size contentId inline downloadUrl }
  }
}"""
SHARE = """
mutation($input: UpdateMailAccountInput!) {
  updateMailAccount(input: $input) { userErrors { code } }
}"""

PNG = b"\x89PNG\r\n\x1a\n" + bytes(random.Random(1).randrange(256) for _ in range(3000))
# Binary, over two IMAP slices (512 KB of base64 each) so slices meet mid-quantum.
BINARY = random.Random(2).randbytes(900_000)
# Quoted-printable with soft breaks, =XX escapes and hard (CRLF) line breaks.
TEXT = ("Prix: 12 € — «devis» = 3 \u00d7 4\r\n" * 40 + "a long line " * 30 + "\r\nend").encode()
HTML_ATTACHMENT = b"<html><script>alert(document.cookie)</script></html>"


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().rstrip("\n")


def _qp(data: bytes) -> str:
    # Soft breaks as "\n": the message's line breaks become CRLF all at once.
    return binascii.b2a_qp(data, istext=False).decode().replace("\r\n", "\n")


def mail_with_parts(subject: str) -> bytes:
    """multipart/mixed: (related: html + an inline png), a binary file with a non-ASCII
    name, a quoted-printable text file, an HTML file."""
    lines = [
        "From: Ann <ann@example.com>",
        "To: bob@example.com",
        f"Subject: {subject}",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        f"Message-ID: <{uuid.uuid4().hex}@example.com>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
        "",
        "--outer",
        'Content-Type: multipart/related; boundary="inner"',
        "",
        "--inner",
        "Content-Type: text/html; charset=utf-8",
        "",
        '<p>Logo: <img src="cid:logo@example.com" alt="logo"></p>',
        "--inner",
        "Content-Type: image/png",
        "Content-Transfer-Encoding: base64",
        "Content-ID: <logo@example.com>",
        'Content-Disposition: inline; filename="logo.png"',
        "",
        _b64(PNG),
        "--inner--",
        "",
        "--outer",
        "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment; filename*=utf-8''Angebot%20M%C3%BCller.bin",
        "",
        _b64(BINARY),
        "--outer",
        'Content-Type: text/plain; charset=utf-8; name="notes.txt"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        _qp(TEXT),
        "--outer",
        'Content-Type: text/html; name="page.html"',
        "Content-Transfer-Encoding: base64",
        "",
        _b64(HTML_ATTACHMENT),
        "--outer--",
        "",
    ]
    return "\n".join(lines).replace("\n", "\r\n").encode()


@pytest_asyncio.fixture(params=["dovecot", "pymap"])
async def mailbox(
    request: pytest.FixtureRequest, dovecot: ImapServer, tmp_path: Path
) -> AsyncIterator[Mailbox]:
    async with private_mailbox(request.param, dovecot, tmp_path) as box:
        yield box


async def _synced(
    client: GraphQLClient, runtime: Runtime, box: Mailbox, raw: bytes, folder: str = "INBOX"
) -> tuple[uuid.UUID, str]:
    """The account and the API id of ``raw`` once APPENDed to ``folder`` and synced."""
    if folder != "INBOX":
        await box.admin.create(folder)
    await box.admin.append(folder, raw)
    account_id = await connect_and_start(client, box, labels=[folder])
    await sync_once(runtime, account_id)
    async with runtime.session_factory() as session:
        [key] = await session.scalars(
            select(Message.id).where(Message.account_id == account_id, Message.subject == "parts")
        )
    return account_id, runtime.message_ids.encode(key)


async def test_every_part_downloads_byte_for_byte_with_safe_headers(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    mailbox: Mailbox,
    http: httpx.AsyncClient,
) -> None:
    assert parse_message(mail_with_parts("parts")).body_html is not None  # well-formed
    client = gql.as_user((await new_user()).token)
    _, message_id = await _synced(client, runtime, mailbox, mail_with_parts("parts"))
    message = (await client.execute(ATTACHMENTS, {"id": message_id}))["message"]
    by_name = {a["filename"]: a for a in message["attachments"]}
    assert sorted(by_name) == ["Angebot Müller.bin", "logo.png", "notes.txt", "page.html"]
    logo = by_name["logo.png"]
    assert (logo["contentId"], logo["inline"], logo["size"]) == (
        "logo@example.com",
        True,
        len(PNG),
    )
    assert not by_name["notes.txt"]["inline"]
    assert len({a["id"] for a in message["attachments"]}) == 4

    expected = {
        "logo.png": PNG,
        "Angebot Müller.bin": BINARY,
        "notes.txt": TEXT,
        "page.html": HTML_ATTACHMENT,
    }
    for name, data in expected.items():
        url = by_name[name]["downloadUrl"]
        response = await http.get(url)  # no Authorization header: the URL is enough
        assert response.status_code == 200, (name, response.text)
        assert response.content == data, name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    headers = {n: (await http.get(by_name[n]["downloadUrl"])).headers for n in expected}
    assert headers["logo.png"]["content-disposition"] == 'inline; filename="logo.png"'
    assert headers["logo.png"]["content-type"] == "image/png"
    assert headers["Angebot Müller.bin"]["content-disposition"] == (
        "attachment; filename=\"Angebot M_ller.bin\"; filename*=UTF-8''Angebot%20M%C3%BCller.bin"
    )
    # HTML is never rendered from the API's origin: a download, sandboxed.
    assert headers["page.html"]["content-disposition"].startswith("attachment;")
    assert headers["notes.txt"]["content-disposition"] == 'attachment; filename="notes.txt"'

    # cid: images become their signed URLs on request; the plain body keeps cid:.
    assert 'src="cid:logo@example.com"' in message["plain"]
    [src] = re.findall(r'<img src="([^"]+)"', message["bodyHtml"])
    assert src.startswith("http://") and "/attachments/" in src
    assert (await http.get(src)).content == PNG
    # Downloads are BODY.PEEK: the message is still unread, here and on the server.
    assert message["isRead"] is False
    flags = await mailbox.admin.flags("INBOX")
    assert "\\Seen" not in flags[max(flags)]  # the message APPENDed last


async def test_links_forged_expired_or_of_another_company_are_refused(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
    http: httpx.AsyncClient,
) -> None:
    owner = await new_user(company="Acme")
    teammate = await new_user(company="Acme")
    stranger = await new_user(company="Globex")
    client = gql.as_user(owner.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id, message_id = await _synced(client, runtime, box, mail_with_parts("parts"))
        [url] = [
            a["downloadUrl"]
            for a in (await client.execute(ATTACHMENTS, {"id": message_id}))["message"][
                "attachments"
            ]
            if a["filename"] == "logo.png"
        ]
        assert (await http.get(url)).status_code == 200
        token = url.rsplit("/", 1)[1]
        base = url[: -len(token)]
        tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
        assert (await http.get(base + tampered)).status_code == 403
        assert (await http.get(base + "not-a-token")).status_code == 403

        links = DownloadLinks(runtime.message_ids, runtime.settings.attachment_link_seconds)
        key = runtime.message_ids.decode(message_id)
        index = 0
        expired = links.token(key, index, owner.id, now=0)
        refused = await http.get(base + expired)
        assert refused.status_code == 403 and "expired" in refused.text
        # Validly signed, but naming a viewer who may not read the message.
        for other in (stranger, teammate):
            assert (await http.get(base + links.token(key, index, other.id))).status_code == 404
        # Shared with the team: the teammate may read it, so their link works; the
        # stranger's still does not (another company).
        shared = await client.execute(
            SHARE, {"input": {"accountId": str(account_id), "sharing": "SHARED"}}
        )
        assert shared["updateMailAccount"]["userErrors"] == []
        assert (await http.get(base + links.token(key, index, teammate.id))).status_code == 200
        assert (await http.get(base + links.token(key, index, stranger.id))).status_code == 404
        assert (await http.get(base + links.token(key, 99, owner.id))).status_code == 404


async def test_a_message_gone_from_the_server_is_410_never_another_part(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    mailbox: Mailbox,
    http: httpx.AsyncClient,
) -> None:
    client = gql.as_user((await new_user()).token)
    raw = mail_with_parts("parts")
    account_id, message_id = await _synced(client, runtime, mailbox, raw, "Projects")

    def url_of(message: dict[str, object], name: str) -> str:
        attachments = message["attachments"]
        assert isinstance(attachments, list)
        return str(next(a["downloadUrl"] for a in attachments if a["filename"] == name))

    before = (await client.execute(ATTACHMENTS, {"id": message_id}))["message"]
    # The folder renumbered (new UIDVALIDITY), another message now at the old UID.
    await recreate(mailbox.admin, "Projects")
    gone = await http.get(url_of(before, "notes.txt"))
    assert gone.status_code == 410, gone.text
    # Once synced, the message is found again under its new UID and its links work.
    await sync_once(runtime, account_id)
    after = (await client.execute(ATTACHMENTS, {"id": message_id}))["message"]
    assert (await http.get(url_of(after, "notes.txt"))).content == TEXT
    # Expunged on the server, not synced yet: 410; synced: the message is gone, 404.
    [uid] = await mailbox.admin.uids("Projects")
    await mailbox.admin.expunge("Projects", uid)
    assert (await http.get(url_of(after, "logo.png"))).status_code == 410
    await sync_once(runtime, account_id)
    assert (await http.get(url_of(after, "logo.png"))).status_code == 404


async def test_a_25_mb_attachment_streams_with_bounded_memory(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    dovecot: ImapServer,
    tmp_path: Path,
    http: httpx.AsyncClient,
) -> None:
    client = gql.as_user((await new_user()).token)
    big = random.Random(3).randbytes(25 * 1024 * 1024)
    raw = (
        (
            "From: ann@example.com\r\nTo: bob@example.com\r\nSubject: parts\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
            "Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="big.zip"\r\n\r\n'
        ).encode()
        + base64.encodebytes(big).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        _, message_id = await _synced(client, runtime, box, raw)
        del raw
        message = (await client.execute(ATTACHMENTS, {"id": message_id}))["message"]
        [attachment] = message["attachments"]
        assert attachment["size"] == len(big)
        expected = hashlib.sha256(big).hexdigest()
        del big
        gc.collect()

        digest = hashlib.sha256()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            async with http.stream("GET", attachment["downloadUrl"]) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
    assert digest.hexdigest() == expected
    # The API and this client share the process: both together held a few slices at
    # most, not the 25 MB file or its 34 MB of base64.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB"
