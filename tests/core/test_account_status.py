"""The account status state machine: allowed moves only, announced after the commit only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.accounts.status import InvalidTransition, transition
from core.db import session_scope
from core.events import AccountStatusChanged, user_channel
from core.models import AccountStatus, MailAccount
from core.runtime import Runtime
from tests.support.factories import TestUser


async def _next_event(runtime: Runtime, user_id: uuid.UUID, ready: asyncio.Event) -> Any:
    async def first() -> Any:
        stream = runtime.events.listen(user_id)
        waiting = asyncio.ensure_future(anext(stream))
        for _ in range(500):  # subscribed on Redis before the publisher commits
            [(_, subscribed)] = await runtime.redis.pubsub_numsub(user_channel(user_id))
            if subscribed and runtime.events.hub.local_listeners(user_id):
                break
            await asyncio.sleep(0.01)
        ready.set()
        try:
            return await waiting
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return await asyncio.wait_for(first(), 10)


async def test_a_move_is_announced_once_committed_and_never_when_rolled_back(
    runtime: Runtime, new_user: Callable[..., Awaitable[TestUser]]
) -> None:
    owner = await new_user()
    account = MailAccount(id=uuid.uuid4(), owner_id=owner.id, status=AccountStatus.ACTIVE)
    ready = asyncio.Event()
    listener = asyncio.create_task(_next_event(runtime, owner.id, ready))
    await ready.wait()

    async def fails_after_the_move() -> None:
        async with session_scope(runtime.session_factory) as session:
            assert transition(session, runtime.events, account, AccountStatus.ERROR)
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await fails_after_the_move()
    account.status = AccountStatus.ACTIVE  # what the rolled-back row still says

    async with session_scope(runtime.session_factory) as session:
        assert transition(session, runtime.events, account, AccountStatus.SYNCING)
        assert not transition(session, runtime.events, account, AccountStatus.SYNCING)
        await asyncio.sleep(0.2)
        assert not listener.done()  # nothing before the commit
    event = await listener
    assert event == AccountStatusChanged(account_id=account.id, status="SYNCING")


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
