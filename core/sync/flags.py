"""The IMAP system flags the store keeps per message."""

from __future__ import annotations

from typing import NamedTuple


class Flags(NamedTuple):
    read: bool  # \Seen
    flagged: bool  # \Flagged
    answered: bool  # \Answered
    deleted: bool  # \Deleted: marked for expunge; the inbox hides it until then


def flag_columns(flags: frozenset[str]) -> Flags:
    """The stored flags from IMAP flags (case-insensitive)."""
    lowered = {f.lower() for f in flags}
    return Flags(
        "\\seen" in lowered,
        "\\flagged" in lowered,
        "\\answered" in lowered,
        "\\deleted" in lowered,
    )
