"""Running at scale: coverage of the interval, connections, and the scheduler's tick.

``make bench BENCH=scale`` (options: ``BENCH_ARGS=--help``). Against a private Dovecot on
loopback, with the default pool and concurrency settings:

1. fleet: ``--workers`` (3) ``mailsync worker`` and ``--apis`` (2) ``mailsync api``
   processes over ``--accounts`` (200) accounts, each its own Dovecot user, all due at once
   when the workers start, with a ``--interval`` (15 s) sync interval, for ``--seconds``
   (75 s). Printed: the share of accounts synced in each interval window once all had their
   first sync, the largest and median gap between two syncs of one account, PostgreSQL
   backends per process (most at once, and how many different ones it opened), syncs per
   second per worker (from each worker's own /metrics), and each worker's peak RSS.
2. a no-change sync of one account in this process: its statements and transactions.
3. the scheduler's tick with 1,000 and 10,000 registered accounts all due (rows only,
   pointing nowhere: nothing syncs them): the time of each tick until all are queued, and
   of a tick that finds nothing due.

The figures before the connection budget and the PostgreSQL scheduler (issue 20): a worker
reached 19 backends, 1,000 syncs opened 520-850 new ones, a no-change sync was 36
statements in 12.5 transactions, and the median gap at a 15 s interval was 25.7 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    REPO,
    BenchError,
    cpu_model,
    database_server,
    fresh_database,
    load_average,
    nproc,
    process_env,
    redis_server,
    run_main,
    say,
    sql,
    tail,
)
from bench.realtime_bench import DOVECOT_LIMITS, Worker, create_accounts

PROCESS_NAME = re.compile(r"^mailsync (api|worker) (\d+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Api:
    """A ``mailsync api`` child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603  # this interpreter, fixed arguments
                [sys.executable, "-m", "cli.main", "api", "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    async def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        url = f"http://127.0.0.1:{self.port}/readyz"
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the API did not start; its log:\n{tail(self.log)}")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def worker_metric(port: int, name: str, labels: dict[str, str]) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def sample_backends(database_url: str) -> dict[tuple[str, int], set[int]]:
    rows = await sql(
        database_url,
        "SELECT application_name, pid FROM pg_stat_activity WHERE datname = current_database()",
    )
    found: dict[tuple[str, int], set[int]] = defaultdict(set)
    for row in rows:
        match = PROCESS_NAME.match(row["application_name"] or "")
        if match:
            found[(match.group(1), int(match.group(2)))].add(row["pid"])
    return found


def settings_of(env: dict[str, str]) -> Any:
    """The Settings of this process, for the servers the children use."""
    from core.settings import Settings, load_settings

    return load_settings(
        Settings,
        database_url=env["MAILSYNC_DATABASE_URL"],
        redis_url=env["MAILSYNC_REDIS_URL"],
        secret_keys=env["MAILSYNC_SECRET_KEYS"],
        allow_private_hosts=True,
        mail_ports="any",
    )


async def fleet(args: argparse.Namespace, workdir: Path, dovecot: Any, env: dict[str, str]) -> None:
    settings = settings_of(env)
    database_url = env["MAILSYNC_DATABASE_URL"]
    started = time.monotonic()
    owners = await create_accounts(settings, dovecot, args.accounts, "scale")
    ids = [a for o in owners for a in o.account_ids]
    say(f"\n## 1. fleet: {args.workers} workers, {args.apis} API processes, {len(ids)} accounts")
    say(f"  {len(ids)} accounts added in {time.monotonic() - started:.1f} s, all due now")
    fleet_env = env | {"MAILSYNC_SYNC_INTERVAL_SECONDS": str(args.interval)}
    apis = [Api(fleet_env, workdir / f"api-{n}.log") for n in range(args.apis)]
    workers = []
    ports = []
    try:
        for api in apis:
            await api.wait_ready()
        for n in range(args.workers):
            port = free_port()
            ports.append(port)
            worker_env = fleet_env | {"MAILSYNC_WORKER_METRICS_PORT": str(port)}
            workers.append(Worker(worker_env, workdir / f"worker-{n}.log"))
        for worker in workers:
            await worker.wait_running()
        t0 = time.monotonic()
        synced: dict[str, list[float]] = defaultdict(list)  # account: times of its syncs
        last: dict[str, Any] = {}
        most: dict[tuple[str, int], int] = defaultdict(int)
        seen: dict[tuple[str, int], set[int]] = defaultdict(set)
        total_most = 0
        while time.monotonic() - t0 < args.seconds:
            now = time.monotonic() - t0
            rows = await sql(database_url, "SELECT id, last_synced_at FROM mail_accounts")
            for row in rows:
                key, value = str(row["id"]), row["last_synced_at"]
                if value is not None and last.get(key) != value:
                    last[key] = value
                    synced[key].append(now)
            backends = await sample_backends(database_url)
            total_most = max(total_most, sum(len(b) for b in backends.values()))
            for process, pids in backends.items():
                most[process] = max(most[process], len(pids))
                seen[process] |= pids
            await asyncio.sleep(0.25)
        runs = [await worker_metric(p, "mailsync_sync_runs_total", {"result": "ok"}) for p in ports]
        rss = [worker.status("VmHWM") for worker in workers]
        duration = time.monotonic() - t0
    finally:
        for worker in workers:
            worker.stop()
        for api in apis:
            api.stop()
    all_synced = [times[0] for times in synced.values() if times]
    if len(all_synced) < len(ids):
        say(f"  only {len(all_synced)} of {len(ids)} accounts synced within {args.seconds:.0f} s")
        return
    warm = max(all_synced)
    say(f"  every account had its first sync {warm:.1f} s after the workers started")
    windows = []
    edge = warm
    while edge + args.interval <= duration - 0.5:
        covered = sum(
            1 for t in synced.values() if any(edge <= x < edge + args.interval for x in t)
        )
        windows.append(covered / len(ids))
        edge += args.interval
    say(
        "  accounts synced in each interval window after that: "
        + ", ".join(f"{w * 100:.1f} %" for w in windows)
    )
    gaps = [b - a for t in synced.values() for a, b in itertools.pairwise(t) if a >= warm]
    if gaps:
        say(
            f"  gap between two syncs of one account: median {statistics.median(gaps):.2f} s, "
            f"largest {max(gaps):.2f} s (interval {args.interval:.0f} s; sampled every 0.25 s)"
        )
    say(f"  PostgreSQL backends of the fleet, most at once: {total_most}")
    for (role, pid), count in sorted(most.items()):
        opened = len(seen[(role, pid)])
        say(f"    {role} {pid}: most at once {count}, different backends opened {opened}")
    total_runs = sum(runs)
    say(
        f"  syncs: {total_runs:.0f} in {duration:.0f} s; per worker "
        + ", ".join(f"{r / duration:.2f}/s" for r in runs)
    )
    say("  worker peak RSS: " + ", ".join(f"{r / 2**20:.0f} MB" for r in rss))
    say(f"  load average {load_average()}")
    await no_change_cost(settings, str(ids[0]))


async def no_change_cost(settings: Any, account_id: str) -> None:
    from sqlalchemy import event

    from core.runtime import open_runtime
    from core.sync.folder import SyncTuning
    from core.sync.run import AccountSyncRun
    from tests.support.statements import recorded_statements

    say("\n## 2. one no-change sync")
    async with open_runtime(settings, role="tool") as runtime:
        account = uuid.UUID(account_id)
        await AccountSyncRun(runtime, account, SyncTuning()).run()  # warm
        begun: list[None] = []

        def begin(*_args: Any) -> None:
            begun.append(None)

        event.listen(runtime.engine.sync_engine, "begin", begin)
        started = time.monotonic()
        with recorded_statements(runtime.engine) as statements:
            result = await AccountSyncRun(runtime, account, SyncTuning()).run()
        took = time.monotonic() - started
        event.remove(runtime.engine.sync_engine, "begin", begin)
    changed = "nothing changed" if result and not result.counts.new else f"{result}"
    say(
        f"  {len(statements)} statements in {len(begun)} transactions, {took * 1000:.0f} ms "
        f"({changed}; before: 36 statements, 12.5 transactions)"
    )


async def scheduler_ticks(env: dict[str, str], sizes: list[int]) -> None:
    from sqlalchemy import delete, insert

    from core.db import session_scope
    from core.identity.service import create_user
    from core.models import AccountStatus, ConnectionSecurity, MailAccount, PastSync, Plan, Sharing
    from core.runtime import open_runtime
    from workers.sync_job import schedule_due_syncs

    say("\n## 3. the scheduler's tick")
    async with open_runtime(settings_of(env), role="tool") as runtime:
        async with session_scope(runtime.session_factory) as session:
            owner = await create_user(
                session, company_name="Ticks", email="ticks@bench.example.com", plan=Plan.POWER
            )
        for size in sizes:
            await runtime.redis.flushdb()
            due = datetime.now(UTC) - timedelta(minutes=1)
            async with session_scope(runtime.session_factory) as session:
                await session.execute(delete(MailAccount))
                rows = [
                    {
                        "owner_id": owner.user.id,
                        "email_address": f"t{n}@bench.example.com",
                        "status": AccountStatus.ACTIVE,
                        "sharing": Sharing.PRIVATE,
                        "past_sync": PastSync.ONE_MONTH,
                        "imap_host": "127.0.0.1",
                        "imap_port": 9,
                        "imap_security": ConnectionSecurity.NONE,
                        "imap_username": f"t{n}",
                        "imap_password_encrypted": b"never read",
                        "next_sync_at": due,
                    }
                    for n in range(size)
                ]
                for first in range(0, size, 2000):
                    await session.execute(insert(MailAccount), rows[first : first + 2000])
            ticks = []
            queued = 0
            while queued < size:
                started = time.monotonic()
                queued += await schedule_due_syncs({"runtime": runtime})
                ticks.append(time.monotonic() - started)
                if len(ticks) > size // 100 + 10:
                    raise BenchError(f"the scheduler queued only {queued} of {size}")
            started = time.monotonic()
            await schedule_due_syncs({"runtime": runtime})
            idle = time.monotonic() - started
            queue = await runtime.redis.zcard(runtime.redis.default_queue_name)
            say(
                f"  {size:,} registered and due: {len(ticks)} ticks queued all {queued:,} "
                f"({queue:,} in arq's queue), each "
                + ", ".join(f"{t * 1000:.0f} ms" for t in ticks)
                + f"; a tick with none due {idle * 1000:.0f} ms"
            )
        await runtime.redis.flushdb()


def run(args: argparse.Namespace) -> int:
    from tests.support.mailservers import ImapServerStartError, start_dovecot

    say("# scale benchmark (connections, scheduler, interval coverage)")
    say(
        f"machine: nproc {nproc()}, {cpu_model()}; load average at start {load_average()} "
        "(other work on the machine skews the figures)"
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="mailsync-scale-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        server_url, server_from = stack.enter_context(database_server())
        redis_url, redis_from = stack.enter_context(redis_server())
        database_url = stack.enter_context(fresh_database(server_url))
        say(f"PostgreSQL ({server_from}), Redis ({redis_from}); default pool and concurrency")
        try:
            dovecot = start_dovecot(workdir, extra_config=DOVECOT_LIMITS)
        except ImapServerStartError as exc:
            raise BenchError(f"Dovecot did not start: {exc}") from exc
        stack.callback(dovecot.stop)
        env = process_env(database_url, redis_url)
        if args.accounts:
            asyncio.run(fleet(args, workdir, dovecot, env))
        asyncio.run(scheduler_ticks(env, args.tick_sizes))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=200, help="0: only the scheduler part")
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--tick-sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
