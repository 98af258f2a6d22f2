"""graphql-transport-ws clients for subscription tests, against the real app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, aconnect_ws

from core.events import user_channel
from core.runtime import Runtime
from tests.support.app import RunningApp
from tests.support.factories import TestUser

PROTOCOL = "graphql-transport-ws"


@asynccontextmanager
async def websocket(
    app: RunningApp, http: httpx.AsyncClient
) -> AsyncIterator[AsyncWebSocketSession]:
    ws: AsyncWebSocketSession
    async with aconnect_ws(
        app.ws_url, http, subprotocols=[PROTOCOL], keepalive_ping_interval_seconds=None
    ) as ws:
        assert ws.subprotocol == PROTOCOL
        yield ws


async def init(ws: AsyncWebSocketSession, payload: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        message["payload"] = payload
    await ws.send_json(message)
    reply: dict[str, Any] = await ws.receive_json(timeout=5)
    return reply


async def subscribe(
    ws: AsyncWebSocketSession,
    runtime: Runtime,
    user: TestUser,
    subscription_id: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> None:
    """Acknowledged, subscribed: listening in the app's event hub, whose connection is
    subscribed to the user's Redis channel."""
    assert (await init(ws, {"authorization": f"Bearer {user.token}"}))["type"] == "connection_ack"
    await start(ws, runtime, user, subscription_id, query, variables)


async def start(
    ws: AsyncWebSocketSession,
    runtime: Runtime,
    user: TestUser,
    subscription_id: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> None:
    """One more subscription on an acknowledged socket, listening once this returns."""
    before = runtime.events.hub.local_listeners(user.id)
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    await ws.send_json({"id": subscription_id, "type": "subscribe", "payload": payload})
    channel = user_channel(user.id)
    for _ in range(500):
        [(_, subscribed)] = await runtime.redis.pubsub_numsub(channel)
        if subscribed >= 1 and runtime.events.hub.local_listeners(user.id) > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the subscription never listened on {channel}")


async def receives_nothing(ws: AsyncWebSocketSession, seconds: float) -> None:
    try:
        leaked = await ws.receive_json(timeout=seconds)
    except TimeoutError:
        return
    pytest.fail(f"an unexpected message arrived: {leaked}")
