"""Issue 19, item 3: PostgreSQL unreachable. Every API call is answered within 2 s with HTTP
503, a GraphQL-shaped JSON error with code UNAVAILABLE, and Retry-After (never a bare
text/plain 500); a websocket's connection_init is closed with 1013 ("try again later").
Once PostgreSQL is back, the same calls succeed again. Against a private cluster that the
test stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketDisconnect

from core.migrate import upgrade
from core.settings import Settings
from tests.support.app import RunningApp, serve
from tests.support.factories import TestUser, make_user
from tests.support.private_servers import PrivatePostgres, private_postgres
from tests.support.websocket import websocket

pytestmark = pytest.mark.slow

ME = "{ me { id } }"
ACCOUNTS = "{ mailAccounts { id emailAddress } }"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        upgrade(server.url)
        yield server


@pytest.fixture
async def app(
    postgres: PrivatePostgres, make_settings: Callable[..., Settings]
) -> AsyncIterator[RunningApp]:
    if not postgres.running:
        postgres.start()
    async with serve(make_settings(database_url=postgres.url)) as running:
        yield running


async def _post(http: httpx.AsyncClient, app: RunningApp, query: str, token: str) -> httpx.Response:
    return await http.post(
        app.graphql_url, json={"query": query}, headers={"authorization": f"Bearer {token}"}
    )


def _assert_unavailable(response: httpx.Response, took: float) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"], body
    assert int(response.headers["retry-after"]) >= 1, response.headers
    assert took < 2.0, took


async def test_api_calls_answer_503_unavailable_while_postgres_is_down(
    app: RunningApp, postgres: PrivatePostgres, http: httpx.AsyncClient
) -> None:
    user: TestUser = await make_user(app.runtime)
    assert (await _post(http, app, ME, user.token)).status_code == 200
    await asyncio.to_thread(postgres.stop)
    try:
        for query in (ME, ACCOUNTS, ME):
            start = time.monotonic()
            response = await _post(http, app, query, user.token)
            _assert_unavailable(response, time.monotonic() - start)
        start = time.monotonic()
        response = await http.post(app.graphql_url, json={"query": ME})  # no token: no DB
        assert response.status_code == 401, response.text
    finally:
        await asyncio.to_thread(postgres.start)
    response = await _post(http, app, ME, user.token)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["id"] == str(user.id)


async def test_a_websocket_connection_init_is_closed_with_try_again_later(
    app: RunningApp, postgres: PrivatePostgres, http: httpx.AsyncClient
) -> None:
    user: TestUser = await make_user(app.runtime)
    await asyncio.to_thread(postgres.stop)
    try:
        async with websocket(app, http) as ws:
            start = time.monotonic()
            await ws.send_json(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {user.token}"}}
            )
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_json(timeout=5)
            took = time.monotonic() - start
    finally:
        await asyncio.to_thread(postgres.start)
    assert closed.value.code == 1013, (closed.value.code, closed.value.reason)
    assert "try again" in (closed.value.reason or "").lower()
    assert took < 2.0, took
