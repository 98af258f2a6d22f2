"""Writing moves and deletes made in the inbox back to the IMAP server.

Runs at the start of an account's sync run (after the flags, before any folder is read),
inside its lock and IMAP session. A move is ``UID MOVE`` where the server has MOVE
(RFC 6851), else ``UID COPY`` + ``\\Deleted`` + ``UID EXPUNGE`` of those UIDs only (UIDPLUS,
RFC 4315); without UIDPLUS the source copy stays marked ``\\Deleted`` (hidden), since a
plain EXPUNGE would also remove what other clients marked. A delete for good is
``\\Deleted`` + ``UID EXPUNGE``. COPYUID gives the moved rows their new UIDs; without it
they stay parked for the target folder's sync to find by Message-ID and fingerprint.

A refusal (NO/BAD) is tried again by the next MAX_ATTEMPTS - 1 runs, then undone: the
message goes back where the server has it, with the reason in ``writeBackError``. Network
faults fail the run like any other (backoff, ``lastError``) and leave the writes pending.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from core.db import SessionFactory, session_scope
from core.mail.mailbox import ImapCommandError, MailboxOps, quote_mailbox, uid_set
from core.moves import repository
from core.moves.repository import PendingWrite

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]", re.I)


async def push_local_moves(sessions: SessionFactory, ops: MailboxOps, account_id: uuid.UUID) -> int:
    """Every pending move and delete of the account; the number written back."""
    async with sessions() as session:
        pending = await repository.pending_writes(session, account_id)
    by_source: dict[uuid.UUID, list[PendingWrite]] = defaultdict(list)
    for write in pending:
        by_source[write.source_folder_id].append(write)
    done = 0
    for writes in by_source.values():
        first = writes[0]
        try:
            state = await ops.select(first.source_name)
        except ImapCommandError:  # the folder is gone on the server
            await _refused(sessions, writes, "The folder it was in is gone from the server.")
            continue
        if first.source_uidvalidity is not None and state.uidvalidity != first.source_uidvalidity:
            async with session_scope(sessions) as session:
                await repository.renumbered(session, writes)
            continue
        by_target: dict[uuid.UUID | None, list[PendingWrite]] = defaultdict(list)
        for write in writes:
            by_target[write.target_folder_id].append(write)
        for position, group in enumerate(by_target.values()):
            if position:  # pymap 0.36 answers a second MOVE with [READ-ONLY] otherwise
                await ops.select(first.source_name)
            done += await _write(sessions, ops, group)
    return done


async def _write(sessions: SessionFactory, ops: MailboxOps, writes: Sequence[PendingWrite]) -> int:
    caps = ops.connection.capabilities
    uids = uid_set([w.source_uid for w in writes])
    target = writes[0].target_name
    new_uids: dict[int, int] = {}
    try:
        if target is None:
            await _command(ops, "store", uids, "+FLAGS.SILENT", "(\\Deleted)")
            expunged = await _expunge(ops, uids)
        elif "MOVE" in caps:
            response = await _command(ops, "move", uids, quote_mailbox(target))
            new_uids, expunged = _copy_uids(response, writes[0].target_uidvalidity), True
        else:
            response = await _command(ops, "copy", uids, quote_mailbox(target))
            new_uids = _copy_uids(response, writes[0].target_uidvalidity)
            await _command(ops, "store", uids, "+FLAGS.SILENT", "(\\Deleted)")
            expunged = await _expunge(ops, uids)
    except ImapCommandError as error:
        log.warning("write-back refused: %s", error)
        reason = f"The mail server refused to {'delete' if target is None else 'move'} it."
        await _refused(sessions, writes, reason)
        return 0
    async with session_scope(sessions) as session:
        await repository.written(session, writes, new_uids, expunged=expunged)
    return len(writes)


async def _refused(sessions: SessionFactory, writes: Sequence[PendingWrite], reason: str) -> None:
    give_up = min(w.attempts for w in writes) + 1 >= MAX_ATTEMPTS
    async with session_scope(sessions) as session:
        await repository.refused(session, writes, reason, give_up=give_up)


async def _command(ops: MailboxOps, name: str, *args: str) -> Any:
    response = await ops.client.uid(name, *args)
    if response.result != "OK":
        said = bytes(response.lines[-1])[:200] if response.lines else b""
        raise ImapCommandError(f"the server refused UID {name.upper()}: {said!r}")
    return response


async def _expunge(ops: MailboxOps, uids: str) -> bool:
    """UID EXPUNGE of these UIDs only (UIDPLUS); False without UIDPLUS (left \\Deleted)."""
    if "UIDPLUS" not in ops.connection.capabilities:
        return False
    await _command(ops, "expunge", uids)
    return True


def _copy_uids(response: Any, target_uidvalidity: int | None) -> dict[int, int]:
    """{source UID: target UID} from COPYUID (RFC 4315), when it names the target's
    UIDVALIDITY as stored; else {} (the rows stay parked)."""
    for line in response.lines:
        match = _COPYUID.search(bytes(line)) if isinstance(line, bytes | bytearray) else None
        if match is None:
            continue
        if target_uidvalidity is None or int(match.group(1)) != target_uidvalidity:
            return {}
        sources, targets = _expand(match.group(2)), _expand(match.group(3))
        return dict(zip(sources, targets, strict=False)) if len(sources) == len(targets) else {}
    return {}


_MAX_COPYUIDS = 10_000  # a hostile "1:4294967295" must not build a list of billions


def _expand(text: bytes) -> list[int]:
    found: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        a, b = int(low), int(high or low)
        if abs(b - a) + len(found) > _MAX_COPYUIDS:
            return []
        step = 1 if b >= a else -1
        found.extend(range(a, b + step, step))
    return found
