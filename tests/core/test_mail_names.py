"""Mailbox names and roles: pure functions over what IMAP servers send."""

from __future__ import annotations

import pytest

from core.mail.folders import folder_role
from core.mail.imap import parse_list_response
from core.mail.utf7 import decode_mailbox_name, encode_mailbox_name
from core.models import FolderRole


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("INBOX", "INBOX"),
        ("Entw&APw-rfe", "Entwürfe"),
        ("&ZeVnLIqe-", "日本語"),
        ("Tom &- Jerry", "Tom & Jerry"),
        ("[Gmail]/Gesendet", "[Gmail]/Gesendet"),
    ],
)
def test_modified_utf7_round_trip(encoded: str, decoded: str) -> None:
    assert decode_mailbox_name(encoded) == decoded
    assert encode_mailbox_name(decoded) == encoded


@pytest.mark.parametrize(
    ("name", "attributes", "role"),
    [
        ("INBOX", (), FolderRole.INBOX),
        ("inbox", (), FolderRole.INBOX),
        ("Stuff", ("\\HasNoChildren", "\\Sent"), FolderRole.SENT),
        ("[Gmail]/All Mail", ("\\All",), FolderRole.ALL),
        ("[Gmail]/Sent Mail", (), FolderRole.SENT),
        ("Deleted Items", (), FolderRole.TRASH),
        ("INBOX.Spam", (), FolderRole.JUNK),
        ("Archives", (), FolderRole.ARCHIVE),
        ("Projects", (), FolderRole.OTHER),
    ],
)
def test_folder_role_prefers_special_use_then_names(
    name: str, attributes: tuple[str, ...], role: FolderRole
) -> None:
    delimiter = "." if name.startswith("INBOX.") else "/"
    assert folder_role(name, delimiter, attributes) is role


def test_list_response_parsing_handles_quotes_literals_and_noselect() -> None:
    lines: list[bytes | bytearray] = [
        b'(\\HasNoChildren) "." INBOX',
        b'(\\HasNoChildren \\Sent) "." "Sent Items"',
        b'(\\Noselect \\HasChildren) "/" "[Gmail]"',
        b'(\\HasNoChildren) "/" {12}',
        bytearray(b"Entw&APw-rfe"),
        b'(\\HasNoChildren) NIL "Quote \\"q\\""',
        b"LIST completed",
    ]
    mailboxes = parse_list_response(lines).mailboxes
    assert [(m.name, m.delimiter, m.role) for m in mailboxes] == [
        ("INBOX", ".", FolderRole.INBOX),
        ("Sent Items", ".", FolderRole.SENT),
        ("Entwürfe", "/", FolderRole.DRAFTS),
        ('Quote "q"', None, FolderRole.OTHER),
    ]
