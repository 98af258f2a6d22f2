"""The pure pieces of the hostile-server caps: the folder cap, byte-bounded fetch chunks,
attachments from BODYSTRUCTURE (the worker-level tests are tests/sync/test_hostile_servers.py)."""

from __future__ import annotations

from core.mail.bodystructure import attachments_of
from core.mail.imap import parse_list_response
from core.mail.parsing import AttachmentInfo
from core.models.enums import FolderRole
from core.sync.pipeline import HEADER_ESTIMATE, byte_chunks
from tests.support.hostile_imap import HugeMessage


def test_the_folder_cap_keeps_inbox_wherever_it_is_listed() -> None:
    folders: list[bytes | bytearray] = [b'(\\HasNoChildren) "/" "F%d"' % i for i in range(50)]
    for lines in (
        [*folders, b'() "/" INBOX', b"LIST completed"],
        [b'() "/" "INBOX"', *folders, b"LIST completed"],
    ):
        listed = parse_list_response(lines, 10)
        assert len(listed.mailboxes) == 10
        assert [m.role for m in listed.mailboxes].count(FolderRole.INBOX) == 1
        assert listed.ignored == 41


def test_fetch_chunks_are_cut_by_count_and_bytes() -> None:
    sizes = {1: 100, 2: 100, 3: 900, 4: 5000, 5: 10, 6: 10, 7: 10}
    parts = byte_chunks([1, 2, 3, 4, 5, 6, 7], sizes, count=2, budget=1000, max_message=3000)
    # 4 is above the maximum: it counts as a header only (which is more than this budget).
    assert parts == [[1, 2], [3], [4], [5, 6], [7]]
    parts = byte_chunks([4, 5], sizes, count=5, budget=HEADER_ESTIMATE + 10, max_message=3000)
    assert parts == [[4, 5]]


def test_attachments_come_from_the_structure() -> None:
    structure = HugeMessage(200 * 2**20).bodystructure()
    [big] = attachments_of(b"UID 1 BODYSTRUCTURE " + structure)
    assert (big.filename, big.content_type, big.encoding) == (
        "big.bin",
        "application/octet-stream",
        "base64",
    )
    assert big.size == (200 * 2**20 - 600) * 57 // 78
    assert big.part == "2"  # its own section of the multipart, fetched as BODY[2]
    inline_image = (
        b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1)'
        b'("image" "png" ("name" "a.png") NIL NIL "base64" 400 NIL ("inline" NIL) NIL) "mixed")'
    )
    # Downloadable by its own section (2 of the multipart), decoded from base64.
    assert attachments_of(inline_image) == (
        AttachmentInfo(
            "a.png", "image/png", 400 * 57 // 78, part="2", encoding="base64", inline=True
        ),
    )
    nested = (
        b'BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7bit" 10 1)'
        b'(("text" "html" NIL NIL NIL "7bit" 10 1)'
        b'("image" "gif" ("name" "x.gif") "<logo@x>" NIL "base64" 78 NIL NIL NIL) "related")'
        b' "mixed")'
    )
    assert attachments_of(nested) == (
        AttachmentInfo(
            "x.gif",
            "image/gif",
            57,
            part="2.2",
            encoding="base64",
            content_id="logo@x",
            inline=True,
        ),
    )


def test_a_hostile_structure_yields_nothing_and_never_raises() -> None:
    leaf = b'("text" "plain" NIL NIL NIL "7bit" 13 1 NIL NIL NIL NIL)'
    deep = b"BODYSTRUCTURE " + b"(" * 10_000 + leaf + b' "mixed")' * 10_000
    for text in (deep, b"BODYSTRUCTURE (unclosed", b"BODYSTRUCTURE ((((", b"no structure"):
        assert attachments_of(text) == ()
