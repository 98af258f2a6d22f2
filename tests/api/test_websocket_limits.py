"""Websockets: one Redis connection per process however many subscriptions, caps per user
and per socket, one protocol, and sockets that close when their token stops working."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws
from sqlalchemy import select, update

from cli.admin import revoke
from core.db import session_scope
from core.events import SyncCompleted
from core.models import ApiToken
from core.runtime import Runtime
from core.settings import DatabaseSettings, load_settings
from tests.support.accounts import NewUser
from tests.support.app import RunningApp, serve
from tests.support.graphql import GraphQLClient
from tests.support.inbox import seed_account
from tests.support.websocket import init, websocket

COMPLETED = "subscription { syncCompleted { newMessages account { id } } }"


async def _our_redis_clients(runtime: Runtime) -> int:
    clients = await runtime.redis.client_list()
    return sum(1 for c in clients if c.get("name") == runtime.redis_client_name)


async def _open(
    stack: AsyncExitStack, app: RunningApp, http: httpx.AsyncClient, token: str
) -> AsyncWebSocketSession:
    ws = await stack.enter_async_context(websocket(app, http))
    assert (await init(ws, {"authorization": f"Bearer {token}"}))["type"] == "connection_ack"
    return ws


async def _listeners(runtime: Runtime, users: list[uuid.UUID], expected: int) -> None:
    for _ in range(1000):
        if sum(runtime.events.hub.local_listeners(u) for u in users) >= expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the subscriptions never all listened")


async def test_redis_clients_stay_flat_while_subscriptions_grow_to_a_thousand(
    running_app: RunningApp, http: httpx.AsyncClient, runtime: Runtime, new_user: NewUser
) -> None:
    """3 sockets x 101 subscriptions took Redis from 10 to 306 clients."""
    per_socket = runtime.settings.subscriptions_per_socket
    users = [await new_user() for _ in range(5)]
    ids = [u.id for u in users]
    account = await seed_account(runtime, users[1])
    async with AsyncExitStack() as stack:
        first = await _open(stack, running_app, http, users[0].token)
        await first.send_json({"id": "s0", "type": "subscribe", "payload": {"query": COMPLETED}})
        await _listeners(runtime, ids, 2)  # the socket's credential watcher and this one
        before = await _our_redis_clients(runtime)

        sockets: dict[uuid.UUID, list[AsyncWebSocketSession]] = {u.id: [] for u in users}
        sockets[users[0].id].append(first)
        for user in users:
            while len(sockets[user.id]) < runtime.settings.websockets_per_user:
                sockets[user.id].append(await _open(stack, running_app, http, user.token))
        total = 1
        for ws in (ws for group in sockets.values() for ws in group):
            for n in range(1 if ws is first else 0, per_socket):
                payload = {"query": COMPLETED}
                await ws.send_json({"id": f"s{n}", "type": "subscribe", "payload": payload})
                total += 1
        assert total == 1000
        await _listeners(runtime, ids, total + 50)  # and the 50 sockets' credential watchers
        after = await _our_redis_clients(runtime)

        # The fan-out reaches every subscription of the user over that one connection.
        now = datetime.now(UTC)
        await runtime.events.publish(
            users[1].id, SyncCompleted(account.id, False, 3, 0, 0, now, now)
        )
        received = [
            await sockets[users[1].id][0].receive_json(timeout=10) for _ in range(per_socket)
        ]
    assert after <= before, (before, after)
    assert sorted(m["id"] for m in received) == sorted(f"s{n}" for n in range(per_socket))
    assert {m["payload"]["data"]["syncCompleted"]["newMessages"] for m in received} == {3}


async def test_a_users_sockets_and_a_sockets_subscriptions_are_capped(
    running_app: RunningApp, http: httpx.AsyncClient, runtime: Runtime, new_user: NewUser
) -> None:
    settings = runtime.settings
    user = await new_user()
    async with AsyncExitStack() as stack:
        sockets = [
            await _open(stack, running_app, http, user.token)
            for _ in range(settings.websockets_per_user)
        ]
        extra = await stack.enter_async_context(websocket(running_app, http))
        await init(extra, {"authorization": f"Bearer {user.token}"})  # the ack, then the close
        assert await _closed_within(extra, 5) == 4429

        ws = sockets[0]
        for n in range(settings.subscriptions_per_socket):
            await ws.send_json(
                {"id": f"s{n}", "type": "subscribe", "payload": {"query": COMPLETED}}
            )
        await _listeners(runtime, [user.id], settings.websockets_per_user + 20)
        await ws.send_json({"id": "over", "type": "subscribe", "payload": {"query": COMPLETED}})
        refused = await ws.receive_json(timeout=5)
        assert refused["id"] == "over" and refused["type"] == "error"
        assert refused["payload"][0]["message"] == "Subscription limit reached"

    # Closed sockets free their places.
    async with AsyncExitStack() as stack:
        await _open(stack, running_app, http, user.token)


async def test_the_legacy_graphql_ws_protocol_is_refused_at_the_handshake(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    with pytest.raises(WebSocketUpgradeError) as refused:
        async with aconnect_ws(running_app.ws_url, http, subprotocols=["graphql-ws"]):
            pass
    assert refused.value.response.status_code == 403


async def _closed_within(ws: AsyncWebSocketSession, seconds: float) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        await ws.receive_json(timeout=seconds)
    return closed.value.code


async def test_a_revoked_token_closes_its_websockets_at_once(
    running_app: RunningApp,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    new_user: NewUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await new_user()
    monkeypatch.setenv("MAILSYNC_REDIS_URL", running_app.runtime.settings.redis_url)
    monkeypatch.setenv("MAILSYNC_DATABASE_URL", running_app.runtime.settings.database_url)
    async with websocket(running_app, http) as ws:
        assert (await init(ws, {"authorization": f"Bearer {user.token}"}))["type"] == (
            "connection_ack"
        )
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": COMPLETED}})
        revoked = await revoke(load_settings(DatabaseSettings), token=user.token, email=None)
        assert revoked == 1
        # The recheck interval is 30 s: the revocation event closes the socket long before.
        assert await _closed_within(ws, 5) == 4403
    response = await gql.as_user(user.token).post("{ me { id } }")
    assert response.status_code == 401


async def test_a_socket_closes_when_its_token_expires(
    make_settings: Any, http: httpx.AsyncClient, runtime: Runtime, new_user: NewUser
) -> None:
    user = await new_user()
    async with (
        serve(make_settings(websocket_auth_recheck_seconds=0.5)) as app,
        websocket(app, http) as ws,
    ):
        reply = await init(ws, {"authorization": f"Bearer {user.token}"})
        assert reply["type"] == "connection_ack"
        async with session_scope(runtime.session_factory) as session:
            await session.execute(
                update(ApiToken)
                .where(ApiToken.user_id == user.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert await _closed_within(ws, 5) == 4403


async def test_an_expired_token_is_401_and_use_is_recorded_at_most_every_few_minutes(
    gql: GraphQLClient, runtime: Runtime, new_user: NewUser
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)

    async def last_used() -> datetime | None:
        async with runtime.session_factory() as session:
            return await session.scalar(
                select(ApiToken.last_used_at).where(ApiToken.user_id == user.id)
            )

    assert await last_used() is None
    await client.execute("{ me { id } }")
    first = await last_used()
    assert first is not None
    await client.execute("{ me { id } }")
    assert await last_used() == first  # not written again within TOUCH_EVERY

    async with session_scope(runtime.session_factory) as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await client.post("{ me { id } }")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
