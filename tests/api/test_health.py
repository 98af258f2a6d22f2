"""Liveness and readiness endpoints, as a load balancer or orchestrator sees them."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from core.settings import Settings
from tests.support.app import RunningApp, free_port, serve


async def test_healthz_answers_ok(running_app: RunningApp, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{running_app.base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_redis_ok(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{running_app.base_url}/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_readyz_is_503_when_redis_is_unreachable(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient
) -> None:
    closed_port = free_port()  # bound then released: nothing listens there
    settings = make_settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")
    async with serve(settings) as app:
        ready = await http.get(f"{app.base_url}/readyz")
        alive = await http.get(f"{app.base_url}/healthz")
    assert ready.status_code == 503, ready.text
    assert ready.json() == {"status": "unavailable", "database": "ok", "redis": "unreachable"}
    assert alive.status_code == 200  # liveness does not depend on Redis


async def test_readyz_is_503_when_redis_may_evict_keys(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    redis = running_app.runtime.redis
    before = next(iter((await redis.config_get("maxmemory-policy")).values()))
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        response = await http.get(f"{running_app.base_url}/readyz")
    finally:
        await redis.config_set("maxmemory-policy", before)
    assert response.status_code == 503
    assert response.json()["redis"] == "evicts keys (allkeys-lru)"
