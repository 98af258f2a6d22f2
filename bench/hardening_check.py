"""Before/after figures for the hardening issue: each attack against a real app.

python -m bench.hardening_check   (uses MAILSYNC_TEST_DATABASE_URL / _REDIS_URL or embedded ones)
Prints one line per attack: what was sent, how long the answer took, and what else waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil

from core.crypto import generate_key
from core.runtime import open_runtime
from core.settings import Settings, load_settings
from tests.support.app import free_port
from tests.support.database import migrated_database, redis_url, server_url
from tests.support.factories import make_user
from tests.support.inbox import seed_account, seed_messages


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


async def timed(coro: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


@contextlib.contextmanager
def api_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`mailsync api` as production runs it, in a process of its own (its RSS is its own)."""
    process = subprocess.Popen(  # noqa: S603  # a fixed argv, no shell
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(10)


async def measure(database: str, redis: str) -> None:
    secret_keys = generate_key()
    env = {
        "MAILSYNC_DATABASE_URL": database,
        "MAILSYNC_REDIS_URL": redis,
        "MAILSYNC_SECRET_KEYS": secret_keys,
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
        "MAILSYNC_MAIL_PORTS": "any",
    }
    settings = load_settings(
        Settings, database_url=database, redis_url=redis, secret_keys=secret_keys
    )
    port = free_port()
    async with open_runtime(settings) as runtime, httpx.AsyncClient(timeout=120) as http:
        with api_process(env, port) as api:
            user = await make_user(runtime)
            auth = {"authorization": f"Bearer {user.token}", "content-type": "application/json"}
            url = f"http://127.0.0.1:{port}/graphql"

            async def post(body: Any) -> httpx.Response:
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                return await http.post(url, content=content, headers=auth)

            async def me_latency(during: Any) -> tuple[float, float, httpx.Response]:
                task = asyncio.create_task(during)
                await asyncio.sleep(0.05)
                waited, _ = await timed(post({"query": "{ me { id } }"}))
                took, response = await timed(task)
                return waited, took, response

            body = {"query": "#" + "x" * 30_000_000 + "\n{ __typename }"}
            waited, took, response = await me_latency(post(body))
            print(f"30 MB comment body: {response.status_code} in {took:.2f} s;", end=" ")
            print(f"`me` waited {waited:.3f} s")

            before = rss_mb(api.pid)
            for i in range(8):
                await post({"query": f"#{i}" + "y" * 20_000_000 + "\n{ __typename }"})
            for i in range(300):  # distinct documents just under the text limit, all parsed
                await post({"query": f"#{i}" + "z" * 19_900 + "\n{ __typename }"})
            after = rss_mb(api.pid)
            print(f"8 distinct 20 MB queries, 300 of 20 kB: API RSS {before:.0f} -> {after:.0f} MB")

            account = await seed_account(runtime, user)
            await seed_messages(runtime, account, [{"message_id": f"t{i}@x"} for i in range(8)])
            inner = "id"
            for _ in range(6):
                inner = f"id thread {{ {inner} }}"
            nested = {"query": f"{{ inbox(first: 100) {{ edges {{ node {{ {inner} }} }} }} }}"}
            waited, took, response = await me_latency(post(nested))
            code = response.json()["errors"][0]["extensions"]["code"]
            print(
                f"6-level thread: {code} in {took * 1000:.0f} ms, {len(response.content)} bytes;"
                f" `me` waited {waited * 1000:.0f} ms"
            )

            send = "mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename } }"
            to = [f"r{i}@x.example" for i in range(200_000)]
            took, response = await timed(
                post({"query": send, "variables": {"input": {"to": to, "subject": "s"}}})
            )
            refusal = response.json()["errors"][0]["extensions"]
            print(f"200,000 recipients: {response.status_code} {refusal} in {took:.2f} s")
            inbox = "query($ids: [ID!]) { inbox(filter: {accountIds: $ids}) { edges { cursor } } }"
            ids = ["00000000-0000-0000-0000-000000000001"] * 1_000_000
            took, response = await timed(post({"query": inbox, "variables": {"ids": ids}}))
            print(f"accountIds x 1e6: {response.status_code} in {took:.2f} s")
            mark = "mutation($ids: [ID!]!) { markMessages(ids: $ids, read: true) { __typename } }"
            took, response = await timed(
                post({"query": mark, "variables": {"ids": ["x"] * 1_000_000}})
            )
            print(f"markMessages x 1e6: {response.status_code} in {took:.2f} s")


def main() -> None:
    with server_url() as server, migrated_database(server) as database, redis_url() as redis:
        asyncio.run(measure(database, redis))
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
