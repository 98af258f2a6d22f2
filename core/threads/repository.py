"""Which conversation a Message-ID belongs to, per user: the SQL of thread keys.

The sync engine files each stored message under its keys; sending files an outgoing
message (and what it replies to) so that its synced Sent copy and the replies join it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, Text, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ThreadKey

_THREAD_KEYS = cast(Table, ThreadKey.__table__)


async def thread_ids_for(
    session: AsyncSession, owner_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, uuid.UUID]:
    """The known conversation of each Message-ID among the owner's mail.

    Joined from ``unnest`` of one array parameter: the planner probes the primary key once
    per key even while a first sync outgrows the table's statistics, and the statement is
    compiled once whatever the number of keys.
    """
    if not keys:
        return {}
    wanted = (
        func.unnest(bindparam("keys", list(keys), type_=PG_ARRAY(Text)))
        .table_valued("key")
        .render_derived(name="wanted")
    )
    rows = await session.execute(
        select(ThreadKey.key, ThreadKey.thread_id)
        .select_from(wanted)
        .join(ThreadKey, (ThreadKey.owner_id == owner_id) & (ThreadKey.key == wanted.c.key))
    )
    return {key: thread_id for key, thread_id in rows}


_REMEMBER_THREAD_KEYS = (
    insert(_THREAD_KEYS)
    .from_select(
        ["owner_id", "key", "thread_id"],
        select(
            bindparam("owner", type_=Uuid),
            func.unnest(bindparam("keys", type_=PG_ARRAY(Text))),
            func.unnest(bindparam("threads", type_=PG_ARRAY(Uuid))),
        ),
    )
    .on_conflict_do_nothing(index_elements=["owner_id", "key"])
)


async def remember_thread_keys(
    session: AsyncSession, owner_id: uuid.UUID, keys: dict[str, uuid.UUID]
) -> None:
    """Register keys; the first conversation a key was seen in keeps it. One statement with
    two array parameters, whatever the number of keys (not one parameter set per key)."""
    if not keys:
        return
    await session.execute(
        _REMEMBER_THREAD_KEYS,
        {"owner": owner_id, "keys": list(keys), "threads": list(keys.values())},
    )
