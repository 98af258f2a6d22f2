"""The RFC 5322 msg-id grammar (section 3.6.4), which every msg-id we store or write meets.

``id-left "@" id-right``: dot-atom text on the left, dot-atom text or a no-fold literal on
the right, printable ASCII only, bounded in length. On top of the grammar an RFC 2047
encoded word (``=?charset?Q?...?=``) is refused: its characters are all atext, but the
email package decodes it when the header is written again, which is how CR/LF got into
replies (CVE-2024-6923).
"""

from __future__ import annotations

import re

MAX_MSG_ID_BYTES = 998
"""Longer msg-ids are dropped: RFC 5322's line limit, and it keeps them indexable in PostgreSQL."""

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_NO_FOLD_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
_MSG_ID = re.compile(rf"{_DOT_ATOM}@(?:{_DOT_ATOM}|{_NO_FOLD_LITERAL})")


def is_msg_id(text: str) -> bool:
    """``text`` (without angle brackets) is a msg-id we may store and write back."""
    return (
        0 < len(text) <= MAX_MSG_ID_BYTES
        and text.isascii()
        and "=?" not in text
        and _MSG_ID.fullmatch(text) is not None
    )
