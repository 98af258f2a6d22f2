"""Finding stored rows again after the server renumbered a folder (a new UIDVALIDITY, a
rename that renumbers): by content fingerprint first, then by Message-ID.

A parked row is matched to at most one server message and the other way round; identical
copies share a fingerprint and are interchangeable. What matches keeps its row (its id,
its place in threads, no new-mail event); only what matches nothing is new.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.mail import fingerprint
from core.mail.mailbox import HeaderItem
from core.mail.parsing import header_message_id
from core.sync.flags import flag_columns
from core.sync.repository import ParkedRow, Rekey


@dataclass(frozen=True)
class Matched:
    rekeys: list[Rekey]
    unmatched: list[HeaderItem]  # server messages no parked row stands for


def match_parked(parked: Sequence[ParkedRow], items: Iterable[HeaderItem]) -> Matched:
    """Pair server messages (their header lines, flags and size) with parked rows."""
    by_fingerprint: dict[str, list[int]] = {}
    by_message_id: dict[str, list[int]] = {}
    for row in parked:
        if row.fingerprint is not None:
            by_fingerprint.setdefault(row.fingerprint, []).append(row.id)
        if row.message_id is not None:
            by_message_id.setdefault(row.message_id, []).append(row.id)
    taken: set[int] = set()

    def take(candidates: list[int] | None) -> int | None:
        while candidates:
            row_id = candidates.pop(0)
            if row_id not in taken:
                taken.add(row_id)
                return row_id
        return None

    rekeys: list[Rekey] = []
    pending: list[HeaderItem] = []
    for item in items:  # exact content first, for every message...
        row_id = take(by_fingerprint.get(fingerprint.of_header(item.header, item.size)))
        if row_id is None:
            pending.append(item)
        else:
            rekeys.append(_rekey(row_id, item))
    unmatched: list[HeaderItem] = []
    for item in pending:  # ...then the same Message-ID (a row stored before fingerprints)
        message_id = header_message_id(item.header)
        row_id = take(by_message_id.get(message_id)) if message_id else None
        if row_id is None:
            unmatched.append(item)
        else:
            rekeys.append(_rekey(row_id, item))
    return Matched(rekeys, unmatched)


def _rekey(row_id: int, item: HeaderItem) -> Rekey:
    return Rekey(row_id, item.uid, item.modseq, flag_columns(item.flags))
