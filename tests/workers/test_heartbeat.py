"""`mailsync worker --check`: what a container health check runs. It succeeds while a
worker on this host renews its heartbeat, and fails once none does: no worker, a worker
whose event loop is stuck (SIGSTOP here), or a worker that stopped."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.support.private_servers import PrivateRedis, private_redis
from tests.support.worker_process import MAILSYNC, worker_environment, worker_process
from workers.leases import LEASE_SECONDS

pytestmark = pytest.mark.slow


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    """A Redis of this test's own: no other test's worker heartbeats in it."""
    with private_redis() as server:
        yield server


async def check(settings: Settings) -> tuple[int, str]:
    result = await asyncio.to_thread(
        subprocess.run,
        [MAILSYNC, "worker", "--check"],
        env=worker_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


async def test_check_follows_the_workers_heartbeat(
    make_settings: Callable[..., Settings], redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = make_settings(redis_url=redis.url())
    code, said = await check(settings)
    assert (code, "no live worker") == (1, said.strip().split(": ", 1)[-1][:14])

    async with worker_process(settings, tmp_path) as worker:
        await worker.wait_for_log("Starting worker", 60)
        for _ in range(100):
            code, said = await check(settings)
            if code == 0:
                break
            await asyncio.sleep(0.2)
        assert code == 0, said
        assert f"pid {worker.process.pid}: alive" in said

        worker.signal(signal.SIGSTOP)  # a stuck event loop renews nothing
        try:
            await asyncio.sleep(LEASE_SECONDS + 2)
            code, said = await check(settings)
            assert code == 1, said
        finally:
            worker.signal(signal.SIGCONT)
        for _ in range(100):  # it carries on, and says so again
            code, said = await check(settings)
            if code == 0:
                break
            await asyncio.sleep(0.2)
        assert code == 0, said

        worker.signal(signal.SIGTERM)
        assert await worker.wait(60) == 0
    code, _ = await check(settings)
    assert code == 1  # a worker that stopped takes its heartbeat with it


async def test_check_fails_clearly_without_redis(
    make_settings: Callable[..., Settings], redis: PrivateRedis
) -> None:
    url = redis.url()
    redis.stop()
    code, said = await check(make_settings(redis_url=url))
    assert code == 1
    assert "cannot reach Redis" in said
