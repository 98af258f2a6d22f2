"""From fetched IMAP messages to ``messages`` rows, with thread ids."""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from core.mail import fingerprint
from core.mail.mailbox import FetchedMessage
from core.mail.parsing import ParsedMessage, thread_key_candidates
from core.sync.flags import flag_columns

ThreadLookup = Callable[[Sequence[str]], Awaitable[dict[str, uuid.UUID]]]


@dataclass
class BuiltRows:
    rows: list[dict[str, Any]]
    thread_keys: dict[str, uuid.UUID]  # every key this chunk used, to remember


_INTERNALDATE = re.compile(
    r"(\d{1,2})-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(\d{4}) "
    r"(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


@functools.lru_cache(maxsize=64)
def _zone(sign: str, hours: int, minutes: int) -> timezone:
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == "-" else offset)


def internal_date(value: str | None) -> datetime | None:
    """An IMAP INTERNALDATE ("dd-Mon-yyyy hh:mm:ss +zzzz"). The common form is read by
    one regex (strptime took 30 us a call, twice per message of a first sync); anything
    else is left to strptime."""
    if not value:
        return None
    text = value.strip()
    match = _INTERNALDATE.fullmatch(text)
    if match is not None:
        day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
        with contextlib.suppress(ValueError):
            return datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=_zone(sign, int(zone_h), int(zone_m)),
            )
    try:
        return datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


async def build_rows(
    fetched: Sequence[FetchedMessage],
    parsed_messages: Sequence[ParsedMessage],
    *,
    account_id: uuid.UUID,
    folder_id: uuid.UUID,
    lookup_threads: ThreadLookup,
    fingerprints: Sequence[str] | None = None,
) -> BuiltRows:
    """Rows to insert, with the thread of each message (known, or new). ``fingerprints``:
    those of ``fetched`` when the parse pool computed them (else they are computed here)."""
    parsed = list(zip(fetched, parsed_messages, strict=True))
    if fingerprints is None:
        fingerprints = [fingerprint.of_message(m.raw, m.size) for m in fetched]
    keys = {key for _, p in parsed for key in thread_key_candidates(p)}
    known = await lookup_threads(sorted(keys))
    threads = dict(known)
    rows: list[dict[str, Any]] = []
    for (message, p), print_ in zip(parsed, fingerprints, strict=True):
        candidates = thread_key_candidates(p)
        thread_id = next((threads[k] for k in candidates if k in threads), None) or uuid.uuid4()
        for key in candidates:  # later messages of this chunk join the same conversation
            threads.setdefault(key, thread_id)
        rows.append(_row(message, p, account_id, folder_id, thread_id, print_))
    return BuiltRows(rows, {k: t for k, t in threads.items() if k not in known})


def _address(name: str | None, address: str) -> dict[str, str | None]:
    return {"name": name, "address": address}


def _row(
    message: FetchedMessage,
    p: ParsedMessage,
    account_id: uuid.UUID,
    folder_id: uuid.UUID,
    thread_id: uuid.UUID,
    print_: str,
) -> dict[str, Any]:
    received = internal_date(message.internal_date)
    flags = flag_columns(message.flags)
    attachments = p.attachments if message.body_downloaded else message.structure
    return {
        "account_id": account_id,
        "folder_id": folder_id,
        "uid": message.uid,
        "modseq": message.modseq,
        "message_id": p.message_id,
        "in_reply_to": p.in_reply_to,
        "references": list(p.references),
        "thread_id": thread_id,
        "subject": p.subject,
        "from_name": p.from_.name if p.from_ else None,
        "from_address": p.from_.address if p.from_ else None,
        "to_addresses": [_address(a.name, a.address) for a in p.to],
        "cc_addresses": [_address(a.name, a.address) for a in p.cc],
        "date": p.date or received or datetime.now(UTC),
        "internal_date": received,
        "snippet": p.snippet,
        "is_read": flags.read,
        "is_flagged": flags.flagged,
        "is_answered": flags.answered,
        "is_deleted": flags.deleted,
        # Not downloaded: the attachments are those its BODYSTRUCTURE names.
        "has_attachments": bool(attachments) or p.has_attachments,
        "attachments": [
            {
                "filename": a.filename,
                "contentType": a.content_type,
                "size": a.size,
                "part": a.part,
                "encoding": a.encoding,
                "contentId": a.content_id,
                "inline": a.inline,
            }
            for a in attachments
        ],
        "body_text": p.body_text,
        "body_html": p.body_html,
        "body_downloaded": message.body_downloaded,
        "size": message.size,
        "fingerprint": print_,
    }
