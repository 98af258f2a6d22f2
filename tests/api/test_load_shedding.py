"""Issue 21: past MAILSYNC_MAX_IN_FLIGHT requests in flight, a request waits for a slot at
most MAILSYNC_MAX_QUEUE_SECONDS and is then answered 503 with Retry-After, instead of
queueing for seconds; health and metrics still answer at once, a request whose slot frees
within the wait is served, and once the admitted requests finish new ones are served
again. The flood is real: requests held in flight by a table lock in PostgreSQL, and many
more sent at once over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from core.runtime import Runtime
from core.settings import Settings
from tests.support.app import serve
from tests.support.database import _asyncpg_dsn
from tests.support.factories import TestUser
from tests.support.inbox import seed_account, seed_messages

INBOX = "{ inbox(first: 10) { totalCount edges { node { id subject } } } }"


async def _in_flight(
    http: httpx.AsyncClient, base_url: str, count: int, connection: asyncpg.Connection
) -> None:
    """Until the app reports ``count`` requests in flight (/metrics is never held)."""
    for _ in range(600):  # 30 s: a busy machine
        metrics = (await http.get(f"{base_url}/metrics")).text
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("mailsync_http_requests_in_flight ")
        )
        if float(line.split()[1]) >= count:
            return
        await asyncio.sleep(0.05)
    activity = await connection.fetch(
        "SELECT state, wait_event_type, left(query, 60) FROM pg_stat_activity "
        "WHERE datname = current_database()"
    )
    raise AssertionError(f"fewer than {count} requests in flight; database: {activity}")


async def test_requests_beyond_the_limit_are_shed_with_retry_after(
    runtime: Runtime,
    make_settings: Callable[..., Settings],
    new_user: Callable[..., Awaitable[TestUser]],
    http: httpx.AsyncClient,
) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(runtime, account, [{"subject": f"m{i}"} for i in range(3)])
    headers = {"authorization": f"Bearer {user.token}"}
    settings = make_settings(max_in_flight=2, max_queue_seconds=1.0, shed_retry_after_seconds=3)
    async with serve(settings) as app:
        # Warm the token lookup and the page once, unlocked.
        ok = await http.post(app.graphql_url, json={"query": INBOX}, headers=headers)
        assert ok.status_code == 200, ok.text
        locker = await asyncpg.connect(_asyncpg_dsn(str(runtime.settings.database_url)))
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")

            def page() -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(
                    http.post(app.graphql_url, json={"query": INBOX}, headers=headers)
                )

            held = [page(), page()]
            await _in_flight(http, app.base_url, 2, locker)
            started = time.monotonic()
            flood = await asyncio.gather(*(page() for _ in range(30)))
            took = time.monotonic() - started
            health = await http.get(f"{app.base_url}/healthz")
            metrics = await http.get(f"{app.base_url}/metrics")
            assert not any(task.done() for task in held)
            queued = page()  # waits for a slot, which frees within its second
            await asyncio.sleep(0.1)
            await lock.rollback()
        finally:
            await locker.close()
        admitted = await asyncio.gather(*held, queued)
        after = await http.post(app.graphql_url, json={"query": INBOX}, headers=headers)

    assert [r.status_code for r in flood] == [503] * 30
    assert 0.9 < took < 3.0, took  # refused after the wait, not queued for longer
    for refused in flood:
        assert refused.headers["retry-after"] == "3"
        assert refused.headers["content-type"].startswith("application/json")
        assert [e["extensions"]["code"] for e in refused.json()["errors"]] == ["UNAVAILABLE"]
    assert health.status_code == 200
    assert metrics.status_code == 200
    assert "mailsync_http_requests_shed_total" in metrics.text
    assert "mailsync_http_requests_in_flight 2.0" in metrics.text
    for response in [*admitted, after]:
        assert response.status_code == 200, response.text
        assert response.json()["data"]["inbox"]["totalCount"] == 3
