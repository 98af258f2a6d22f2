"""Issue 19, item 2: subscriptions survive a Redis restart. The API's event fan-out
reconnects; subscriptions that carry state (accountStatusChanged, syncProgress) receive the
current state again, since pub/sub loses what was published meanwhile; none of them ends
(a client that reads `complete` as "done" would never resubscribe). Against a private
redis-server that the test restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.events import AccountStatusChanged
from core.settings import Settings
from tests.support.app import RunningApp, serve
from tests.support.factories import make_user
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.private_servers import PrivateRedis, private_redis
from tests.support.sync import connect_and_start, private_mailbox
from tests.support.websocket import start, subscribe, websocket

pytestmark = pytest.mark.slow

STATUS = "subscription { accountStatusChanged { id status } }"
PROGRESS = "subscription { syncProgress { account { id } folder fetched total } }"


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def app(
    redis: PrivateRedis, make_settings: Callable[..., Settings], clean: None
) -> AsyncIterator[RunningApp]:
    async with serve(make_settings(redis_url=redis.url())) as running:
        yield running


async def _messages(ws: Any, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within ``seconds``."""
    received: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            received.append(await ws.receive_json(timeout=left))
        except TimeoutError:
            break
    return received


async def test_subscriptions_survive_a_redis_restart_and_get_the_current_state(
    app: RunningApp,
    redis: PrivateRedis,
    http: httpx.AsyncClient,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    runtime = app.runtime
    user = await make_user(runtime)
    client = GraphQLClient(http, app.graphql_url, user.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        account_id = await connect_and_start(client, box, labels=["INBOX"])  # SYNCING
    async with websocket(app, http) as ws:
        await subscribe(ws, runtime, user, "status", STATUS)
        await start(ws, runtime, user, "progress", PROGRESS)

        await asyncio.to_thread(redis.restart, 2.0)
        after = await _messages(ws, seconds=8)

        assert [m for m in after if m["type"] in ("complete", "error")] == [], after
        by_id = {m["id"]: m["payload"]["data"] for m in after if m["type"] == "next"}
        assert by_id.get("status") == {
            "accountStatusChanged": {"id": str(account_id), "status": "SYNCING"}
        }, after
        progress = by_id.get("progress", {}).get("syncProgress")
        assert progress is not None, after
        assert progress["account"] == {"id": str(account_id)} and progress["folder"] == "INBOX"

        # The fan-out listens again: a change published now arrives.
        await runtime.events.publish(user.id, AccountStatusChanged(account_id, "ACTIVE"))
        [changed] = await _messages(ws, seconds=3)
        assert changed["id"] == "status", changed
