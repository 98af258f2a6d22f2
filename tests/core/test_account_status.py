"""The account status state machine: allowed moves only, announced after the commit only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from core.accounts.status import InvalidTransition, transition
from core.db import session_scope
from core.events import AccountStatusChanged, Event, decode_event, user_channel
from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from tests.support.factories import TestUser


@asynccontextmanager
async def channel_of(runtime: Runtime, user_id: uuid.UUID) -> AsyncIterator[Any]:
    """The user's Redis channel, on a pub/sub connection of the test's own."""
    pubsub = runtime.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(user_channel(user_id))
    try:
        yield pubsub
    finally:
        await pubsub.aclose()


async def next_event(pubsub: Any, seconds: float) -> Event | None:
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None and message.get("type") == "message":
            return decode_event(message["data"])
    return None


async def test_a_move_is_announced_once_committed_and_never_when_rolled_back(
    runtime: Runtime, new_user: Callable[..., Awaitable[TestUser]]
) -> None:
    owner = await new_user()
    account = MailAccount(id=uuid.uuid4(), owner_id=owner.id, status=AccountStatus.ACTIVE)

    async def fails_after_the_move() -> None:
        async with session_scope(runtime.session_factory) as session:
            assert transition(session, runtime.events, account, AccountStatus.ERROR)
            raise RuntimeError("the transaction fails")

    async with channel_of(runtime, owner.id) as channel:
        with pytest.raises(RuntimeError):
            await fails_after_the_move()
        account.status = AccountStatus.ACTIVE  # what the rolled-back row still says

        async with session_scope(runtime.session_factory) as session:
            assert transition(session, runtime.events, account, AccountStatus.SYNCING)
            assert not transition(session, runtime.events, account, AccountStatus.SYNCING)
            assert await next_event(channel, 0.3) is None  # nothing before the commit
        event = await next_event(channel, 10)
        assert event == AccountStatusChanged(account_id=account.id, status="SYNCING")
        assert await next_event(channel, 0.3) is None  # once, and nothing for the rollback


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (AccountStatus.READY, AccountStatus.ACTIVE),  # never synced: it must start first
        (AccountStatus.PAUSED, AccountStatus.SYNCING),  # a paused account is not synced
        (AccountStatus.AUTH_FAILED, AccountStatus.SYNCING),  # only a reconnect lifts it
        (AccountStatus.READY, AccountStatus.ERROR),
    ],
)
async def test_a_move_the_machine_does_not_allow_is_refused(
    runtime: Runtime, current: AccountStatus, wanted: AccountStatus
) -> None:
    account = MailAccount(id=uuid.uuid4(), owner_id=uuid.uuid4(), status=current)
    async with session_scope(runtime.session_factory) as session:
        with pytest.raises(InvalidTransition):
            transition(session, runtime.events, account, wanted)
    assert account.status is current
