"""From fetched IMAP messages to ``messages`` rows, with thread ids."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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


def internal_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


async def build_rows(
    fetched: Sequence[FetchedMessage],
    parsed_messages: Sequence[ParsedMessage],
    *,
    account_id: uuid.UUID,
    folder_id: uuid.UUID,
    lookup_threads: ThreadLookup,
) -> BuiltRows:
    """Rows to insert, with the thread of each message (known, or new)."""
    parsed = list(zip(fetched, parsed_messages, strict=True))
    keys = {key for _, p in parsed for key in thread_key_candidates(p)}
    known = await lookup_threads(sorted(keys))
    threads = dict(known)
    rows: list[dict[str, Any]] = []
    for message, p in parsed:
        candidates = thread_key_candidates(p)
        thread_id = next((threads[k] for k in candidates if k in threads), None) or uuid.uuid4()
        for key in candidates:  # later messages of this chunk join the same conversation
            threads.setdefault(key, thread_id)
        rows.append(_row(message, p, account_id, folder_id, thread_id))
    return BuiltRows(rows, {k: t for k, t in threads.items() if k not in known})


def _address(name: str | None, address: str) -> dict[str, str | None]:
    return {"name": name, "address": address}


def _row(
    message: FetchedMessage,
    p: ParsedMessage,
    account_id: uuid.UUID,
    folder_id: uuid.UUID,
    thread_id: uuid.UUID,
) -> dict[str, Any]:
    received = internal_date(message.internal_date)
    flags = flag_columns(message.flags)
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
        "has_attachments": p.has_attachments,
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
            for a in p.attachments
        ],
        "body_text": p.body_text,
        "body_html": p.body_html,
        "size": message.size,
        "fingerprint": fingerprint.of_message(message.raw, message.size),
    }
