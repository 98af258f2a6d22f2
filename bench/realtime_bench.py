"""Real time (IMAP IDLE): push latency, idle cost per watcher, takeover after SIGKILL.

``make bench BENCH=realtime`` (options: ``BENCH_ARGS=--help``). Against a private Dovecot on
loopback, with ``mailsync worker`` processes and the API (in this process) serving the
websocket clients that measure:

1. push: ``--accounts`` (200) accounts syncing and idling; ``--appends`` (200) APPENDs
   spread over them at random intervals; latency from APPEND's OK to the account's
   ``syncCompleted`` at a websocket client. Then the same APPENDs with IDLE disabled
   (``MAILSYNC_IDLE_ENABLED=false``, the default 60 s polling interval): the ratio.
2. takeover: a second worker joins, the one holding the watchers is SIGKILLed, APPENDs are
   made at once; time until every account is watched again, and every APPEND's event.
3. idle: ``--idle-accounts`` (1,000) accounts on one worker: time until every watcher is
   in IDLE after the worker starts, the worker's peak RSS, RSS per watcher (against the
   same worker with IDLE disabled), and its CPU while nothing arrives (the polling interval
   set to an hour there, so that only the watchers' cost is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

ACCOUNTS_PER_USER = 5  # the ENTERPRISE plan's limit
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SYNC_COMPLETED = "subscription { syncCompleted(accountId: null) { account { id } newMessages } }"
# Enough Dovecot processes for every watcher and sync run (its defaults allow 100).
DOVECOT_LIMITS = (
    "default_process_limit = 3000",
    "default_client_limit = 6000",
    "default_vsz_limit = 256M",
)


@dataclass
class Owner:
    user_id: uuid.UUID
    token: str
    account_ids: list[uuid.UUID]


@dataclass
class Box:
    account_id: uuid.UUID
    username: str
    password: str


boxes: dict[uuid.UUID, Box] = {}  # every account made, by id


def percentiles(values: list[float]) -> str:
    if not values:
        return "(none)"
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return (
        f"p50 {at(0.5) * 1000:.0f} ms, p90 {at(0.9) * 1000:.0f} ms, "
        f"p99 {at(0.99) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms "
        f"(mean {statistics.fmean(ordered) * 1000:.0f} ms, n={len(ordered)})"
    )


def histogram(values: list[float]) -> list[str]:
    edges = [0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 30, 60, 120]
    lines, low = [], 0.0
    for edge in edges:
        count = sum(1 for v in values if low <= v < edge)
        if count:
            lines.append(f"    {low:>6.1f}-{edge:<6.1f}s {count:>4} {'#' * max(1, count // 4)}")
        low = edge
    over = sum(1 for v in values if v >= low)
    if over:
        lines.append(f"    >= {low:.0f} s      {over:>4}")
    return lines


# -- processes -------------------------------------------------------------------------


class Worker:
    """A ``mailsync worker`` child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self, field: str) -> int:
        """A kB field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def wait_running(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while "Starting worker" not in tail(self.log, 400):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the worker did not start; its log:\n{tail(self.log)}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(env: dict[str, str], log: Path) -> Iterator[Worker]:
    worker = Worker(env, log)
    try:
        yield worker
    finally:
        worker.stop()


# -- accounts --------------------------------------------------------------------------


async def create_accounts(settings: Any, dovecot: Any, count: int, tag: str) -> list[Owner]:
    """``count`` accounts (each its own Dovecot user), five per ENTERPRISE user, syncing
    INBOX; the sync jobs startSync queued stay queued for the workers."""
    from core.accounts.inputs import NewAccount, ServerFields
    from core.accounts.service import AccountService
    from core.db import session_scope
    from core.identity.service import create_user
    from core.identity.viewer import Viewer
    from core.models import ConnectionSecurity, PastSync, Plan, Sharing
    from core.runtime import open_runtime
    from core.sync.service import SyncService

    owners: list[Owner] = []
    gate = asyncio.Semaphore(8)
    async with open_runtime(settings) as runtime:

        async def add_one(viewer: Viewer, owner: Owner, number: int) -> None:
            username, password = f"rt-{tag}-{number}@bench.example.com", "pw-bench"
            dovecot.add_user(username, password)
            imap = ServerFields(
                host=dovecot.host,
                port=dovecot.port,
                security=ConnectionSecurity.NONE,
                username=username,
                password=password,
            )
            async with gate:
                async with session_scope(runtime.session_factory) as session:
                    account = await AccountService(session, runtime).add(
                        viewer, NewAccount(email_address=username, imap=imap)
                    )
                    account_id = account.id
                async with session_scope(runtime.session_factory) as session:
                    await SyncService(session, runtime).start(
                        viewer,
                        account_id,
                        sharing=Sharing.PRIVATE,
                        labels=["INBOX"],
                        past_sync=PastSync.ALL,
                    )
            owner.account_ids.append(account_id)
            boxes[account_id] = Box(account_id, username, password)

        number = 0
        work = []
        for first in range(0, count, ACCOUNTS_PER_USER):
            async with session_scope(runtime.session_factory) as session:
                created = await create_user(
                    session,
                    company_name=f"Realtime {tag} {first}",
                    email=f"owner-{tag}-{first}@bench.example.com",
                    plan=Plan.ENTERPRISE,
                )
            viewer = Viewer(
                user_id=created.user.id,
                company_id=created.company.id,
                role=created.user.role,
                plan=created.company.plan,
            )
            owner = Owner(created.user.id, created.token, [])
            owners.append(owner)
            for _ in range(min(ACCOUNTS_PER_USER, count - first)):
                work.append(add_one(viewer, owner, number))
                number += 1
        await asyncio.gather(*work)
    return owners


def append_now(dovecot: Any, box: Box, subject: str) -> float:
    """APPEND one message; the monotonic time of its OK."""
    message = (
        f"From: Ann <ann@example.com>\r\nTo: {box.username}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@bench.example.com>\r\n\r\nHello\r\n"
    ).encode()
    client = imaplib.IMAP4(dovecot.host, dovecot.port)
    try:
        client.login(box.username, box.password)
        typ, data = client.append("INBOX", None, None, message)
        done = time.monotonic()
        if typ != "OK":
            raise BenchError(f"APPEND refused: {data!r}")
        return done
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def server_notice_seconds(dovecot: Any, samples: int = 20) -> list[float]:
    """The server's own share of a push: a bare IDLE client (a Dovecot user mailsync does
    not know) and the time from each APPEND's OK to the untagged EXISTS on it."""
    username, password = f"floor-{uuid.uuid4().hex[:8]}@bench.example.com", "floor-secret"
    dovecot.add_user(username, password)
    box = Box(uuid.uuid4(), username, password)
    seconds: list[float] = []
    with socket.create_connection((dovecot.host, dovecot.port), timeout=30) as idle:
        lines = idle.makefile("rb")
        lines.readline()  # the greeting
        idle.sendall(f"a LOGIN {username} {password}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
        while not lines.readline().startswith(b"+"):
            pass
        for number in range(samples):
            ok_at = append_now(dovecot, box, f"floor {number}")
            while not lines.readline().rstrip().endswith(b"EXISTS"):
                pass
            seconds.append(time.monotonic() - ok_at)
            time.sleep(0.1)
    return seconds


async def counts(database_url: str, ids: list[uuid.UUID]) -> dict[str, int]:
    rows = await sql(
        database_url,
        "SELECT count(*) FILTER (WHERE l.established_at IS NOT NULL AND l.expires_at > now()),"
        " count(*) FILTER (WHERE a.last_synced_at IS NOT NULL AND NOT a.initial_sync_pending)"
        " FROM mail_accounts a LEFT JOIN watcher_leases l ON l.account_id = a.id"
        " WHERE a.id = ANY($1::uuid[])",
        ids,
    )
    return {"watched": rows[0][0], "synced": rows[0][1]}


async def holders(database_url: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    rows = await sql(
        database_url,
        "SELECT account_id, CASE WHEN established_at IS NOT NULL AND expires_at > now()"
        " THEN worker_id END FROM watcher_leases WHERE account_id = ANY($1::uuid[])",
        ids,
    )
    return {row[0]: row[1] for row in rows}


async def queue_empty(redis: Any) -> bool:
    from arq.constants import default_queue_name

    queued = await redis.zrange(default_queue_name, 0, -1)
    if any(job.startswith(b"sync:") for job in queued):
        return False
    running = redis.scan_iter(match="arq:in-progress:sync:*", count=1000)
    return not [key async for key in running]


async def wait_for(what: str, check: Any, within: float, worker: Worker | None = None) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            log = f"\nworker log:\n{tail(worker.log)}" if worker else ""
            raise BenchError(f"timed out after {within:.0f} s waiting for {what}{log}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def sync_run_totals(port: int) -> tuple[float, float]:
    """(runs, seconds) so far of the worker's ``mailsync_sync_duration_seconds``, read from
    its /metrics (arq's per-job log lines are DEBUG-only now)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    totals = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        match = re.match(r"mailsync_sync_duration_seconds_(count|sum) ([0-9.e+]+)$", line)
        if match:
            totals[match.group(1)] = float(match.group(2))
    return totals["count"], totals["sum"]


# -- the measures ----------------------------------------------------------------------


class Listener:
    """Websocket clients (one per owner) on the API; each syncCompleted's time."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.events: asyncio.Queue[tuple[float, str, int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = 0

    async def start(self, owners: list[Owner]) -> None:
        for owner in owners:
            self._tasks.append(asyncio.create_task(self._listen(owner)))
        deadline = time.monotonic() + 60
        while self._ready < len(owners):
            if time.monotonic() > deadline:
                raise BenchError("the websocket clients did not all subscribe")
            for task in self._tasks:
                if task.done():
                    task.result()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the API's hub subscribed on Redis

    async def _listen(self, owner: Owner) -> None:
        import httpx
        from httpx_ws import AsyncWebSocketSession, aconnect_ws

        ws: AsyncWebSocketSession
        async with (
            httpx.AsyncClient(timeout=30) as http,
            aconnect_ws(
                self.ws_url,
                http,
                subprotocols=["graphql-transport-ws"],
                keepalive_ping_interval_seconds=None,
            ) as ws,
        ):
            await ws.send_json(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {owner.token}"}}
            )
            ack = await ws.receive_json(timeout=30)
            if ack.get("type") != "connection_ack":
                raise BenchError(f"the API refused the websocket: {ack}")
            await ws.send_json(
                {"id": "live", "type": "subscribe", "payload": {"query": SYNC_COMPLETED}}
            )
            self._ready += 1
            while True:
                message = await ws.receive_json()
                if message.get("type") != "next":
                    continue
                data = message["payload"]["data"]["syncCompleted"]
                self.events.put_nowait(
                    (time.monotonic(), data["account"]["id"], int(data["newMessages"]))
                )

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def push_latencies(
    dovecot: Any,
    listener: Listener,
    ids: list[uuid.UUID],
    appends: int,
    spread: float,
    within: float,
    seed: int,
) -> tuple[list[float], int]:
    """APPENDs to random accounts at random intervals (``spread`` s in all); the latency of
    each (OK to its account's syncCompleted), and how many never arrived within ``within``."""
    rng = random.Random(seed)  # noqa: S311  # a reproducible workload, not secrets
    listener.drain()
    pending: dict[str, list[float]] = {}
    latencies: list[float] = []
    gaps = [rng.expovariate(appends / spread) for _ in range(appends)]

    async def arrivals() -> None:
        while True:
            at, account, new = await listener.events.get()
            waiting = pending.get(account, [])
            for _ in range(min(new, len(waiting))):
                latencies.append(at - waiting.pop(0))

    collector = asyncio.create_task(arrivals())
    try:
        sent: list[asyncio.Task[None]] = []

        async def one(box: Box, number: int) -> None:
            ok_at = await asyncio.to_thread(append_now, dovecot, box, f"push {number}")
            pending.setdefault(str(box.account_id), []).append(ok_at)
            # (an event that arrives before the OK is recorded pairs with the next one: rare,
            # and it shortens nothing, since the OK is read first on loopback)

        for number, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            box = boxes[rng.choice(ids)]
            sent.append(asyncio.create_task(one(box, number)))
        await asyncio.gather(*sent)
        deadline = time.monotonic() + within
        while len(latencies) < appends and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # (the collector appends; polling it is simplest here)
    finally:
        collector.cancel()
    return latencies, appends - len(latencies)


async def measure(
    args: argparse.Namespace, workdir: Path, dovecot: Any, env: dict[str, str]
) -> None:
    from core.runtime import open_runtime
    from core.settings import Settings, load_settings
    from tests.support.app import free_port, serve

    settings = load_settings(
        Settings,
        database_url=env["MAILSYNC_DATABASE_URL"],
        redis_url=env["MAILSYNC_REDIS_URL"],
        secret_keys=env["MAILSYNC_SECRET_KEYS"],
        allow_private_hosts=True,
        mail_ports="any",
        websockets_per_user=20,
    )
    database_url = settings.database_url
    say(f"creating {args.accounts} accounts (Dovecot users) ...")
    owners = await create_accounts(settings, dovecot, args.accounts, "push")
    ids = [a for o in owners for a in o.account_ids]
    async with serve(settings) as app, open_runtime(settings) as runtime:
        listener = Listener(app.graphql_url.replace("http://", "ws://"))
        await listener.start(owners)
        say(f"{len(owners)} websocket clients subscribed to syncCompleted")

        # 1. push latency with IDLE
        metrics_port = free_port()
        push_env = {**env, "MAILSYNC_WORKER_METRICS_PORT": str(metrics_port)}
        with running(push_env, workdir / "worker-push.log") as worker:
            await worker.wait_running()

            async def all_ready() -> bool:
                c = await counts(database_url, ids)
                return c["watched"] == len(ids) and c["synced"] == len(ids)

            ready = await wait_for("watchers and first syncs", all_ready, 600, worker)
            await wait_for("an empty queue", lambda: queue_empty(runtime.redis), 300, worker)
            say(f"{len(ids)} accounts synced and in IDLE {ready:.1f} s after the worker started")
            rss_before = worker.status("VmRSS")
            runs_before = sync_run_totals(metrics_port)
            idle_latency, idle_lost = await push_latencies(
                dovecot, listener, ids, args.appends, args.spread, 30, args.seed
            )
            say("")
            say(f"push latency, IDLE ({args.appends} APPENDs over ~{args.spread:.0f} s):")
            say("  " + percentiles(idle_latency))
            say("\n".join(histogram(idle_latency)))
            if idle_lost:
                say(f"  {idle_lost} APPENDs had no syncCompleted within 30 s")
            floor = await asyncio.to_thread(server_notice_seconds, dovecot)
            say(
                "  of which the server's own notice (a bare IDLE client, APPEND OK to EXISTS): "
                + percentiles(floor)
            )
            if idle_latency and floor:
                say(
                    "  the rest, mailsync's (debounce, request, queue, run, event, websocket): "
                    f"p50 {(statistics.median(idle_latency) - statistics.median(floor)) * 1000:.0f}"
                    " ms"
                )
            runs, seconds = (
                after - before
                for after, before in zip(sync_run_totals(metrics_port), runs_before, strict=True)
            )
            if runs:
                say(
                    f"  sync runs meanwhile (pushed and scheduled; the worker's metrics): "
                    f"{runs:.0f}, mean {seconds / runs * 1000:.0f} ms"
                )
            say(
                f"  worker RSS {rss_before / 2**20:.0f} MB before, "
                f"{worker.status('VmRSS') / 2**20:.0f} MB after, peak "
                f"{worker.status('VmHWM') / 2**20:.0f} MB"
            )

            # 2. takeover: a second worker; SIGKILL the first; APPENDs meanwhile
            second_env = dict(env)
            with running(second_env, workdir / "worker-second.log") as second:
                await second.wait_running()
                await asyncio.sleep(2)
                before = await holders(database_url, ids)
                first_holder = {h for h in before.values() if h}
                say("")
                say(
                    f"takeover: a second worker joined; watchers held by "
                    f"{len(first_holder)} worker(s); SIGKILL the first"
                )
                killed = time.monotonic()
                worker.kill()
                listener.drain()
                rng = random.Random(args.seed + 1)  # noqa: S311  # a workload, not secrets
                orphan_boxes = rng.sample(ids, min(20, len(ids)))
                appended = [
                    await asyncio.to_thread(append_now, dovecot, boxes[a], "while orphaned")
                    for a in orphan_boxes
                ]

                async def all_taken() -> bool:
                    now = await holders(database_url, ids)
                    return all(h and h not in first_holder for h in now.values())

                taken = await wait_for("the takeover", all_taken, 120, second)
                takeover = time.monotonic() - killed
                seen: set[str] = set()
                deadline = time.monotonic() + 30
                while len(seen) < len(orphan_boxes) and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        _, account, new = await asyncio.wait_for(listener.events.get(), 1)
                        if new:
                            seen.add(account)
                missed = len({str(a) for a in orphan_boxes} - seen)
                say(
                    f"  all {len(ids)} accounts watched again {takeover:.1f} s after the SIGKILL "
                    f"(lease {settings.idle_lease_seconds:.0f} s; waited {taken:.1f} s); "
                    f"{len(appended)} APPENDs made meanwhile: {len(appended) - missed} arrived, "
                    f"{missed} missed"
                )

        # 1b. the same APPENDs, polling only
        poll_env = {**env, "MAILSYNC_IDLE_ENABLED": "false"}
        with running(poll_env, workdir / "worker-poll.log") as worker:
            await worker.wait_running()
            await wait_for("an empty queue", lambda: queue_empty(runtime.redis), 300, worker)
            await asyncio.sleep(2)
            poll_latency, poll_lost = await push_latencies(
                dovecot, listener, ids, args.appends, args.spread, 90, args.seed
            )
            say("")
            interval = settings.sync_interval_seconds
            say(f"the same APPENDs with IDLE disabled (polling every {interval:.0f} s):")
            say("  " + percentiles(poll_latency))
            if poll_lost:
                say(f"  {poll_lost} APPENDs had no syncCompleted within 90 s")
            if idle_latency and poll_latency:
                ratio = statistics.median(poll_latency) / statistics.median(idle_latency)
                say(f"  median latency, polling / IDLE: {ratio:.0f}x")
        await listener.close()

        # 3. idle accounts on one worker
        if args.idle_accounts:
            await idle_cost(args, workdir, dovecot, env, settings, runtime)


async def idle_cost(
    args: argparse.Namespace,
    workdir: Path,
    dovecot: Any,
    env: dict[str, str],
    settings: Any,
    runtime: Any,
) -> None:
    database_url = settings.database_url
    extra = max(0, args.idle_accounts - args.accounts)
    say("")
    say(f"creating {extra} more accounts for {args.idle_accounts} idle ones ...")
    await create_accounts(settings, dovecot, extra, "idle")
    all_ids = [
        row[0]
        for row in await sql(
            database_url,
            "SELECT id FROM mail_accounts ORDER BY created_at LIMIT $1",
            args.idle_accounts,
        )
    ]
    quiet = {
        **env,
        "MAILSYNC_SYNC_INTERVAL_SECONDS": "3600",
        "MAILSYNC_IDLE_PER_WORKER": str(max(args.idle_accounts, 500)),
    }
    # Without IDLE: the first syncs, then the worker's RSS and CPU at rest (the baseline).
    with running({**quiet, "MAILSYNC_IDLE_ENABLED": "false"}, workdir / "worker-base.log") as w:
        await w.wait_running()

        async def synced() -> bool:
            return (await counts(database_url, all_ids))["synced"] == len(all_ids)

        await wait_for("the first syncs", synced, 1200, w)
        await wait_for("an empty queue", lambda: queue_empty(runtime.redis), 300, w)
        await asyncio.sleep(3)
        base_rss = w.status("VmRSS")
        cpu0, t0 = w.cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.quiet_seconds)
        base_cpu = (w.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    with running(quiet, workdir / "worker-idle.log") as w:
        await w.wait_running()
        started = w.started

        async def all_watched() -> bool:
            return (await counts(database_url, all_ids))["watched"] == len(all_ids)

        await wait_for("every watcher", all_watched, 600, w)
        established = time.monotonic() - started
        await wait_for("an empty queue", lambda: queue_empty(runtime.redis), 300, w)
        await asyncio.sleep(3)
        rss = w.status("VmRSS")
        cpu0, t0 = w.cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.quiet_seconds)
        cpu = (w.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        peak = w.status("VmHWM")
        sockets = len(os.listdir(f"/proc/{w.pid}/fd"))
    n = len(all_ids)
    say(f"{n} idle accounts on one worker:")
    say(
        f"  all {n} watchers in IDLE {established:.1f} s after the worker process started "
        f"(Python start-up included); {sockets} open file descriptors"
    )
    say(
        f"  worker RSS {rss / 2**20:.0f} MB (peak {peak / 2**20:.0f} MB); the same worker "
        f"without IDLE: {base_rss / 2**20:.0f} MB; per watcher "
        f"{(rss - base_rss) / n / 1024:.0f} KB"
    )
    say(
        f"  CPU while nothing arrives, over {args.quiet_seconds:.0f} s: {cpu * 100:.2f} % of one "
        f"core (without IDLE {base_cpu * 100:.2f} %)"
    )


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


@contextlib.contextmanager
def enough_inotify_instances(needed: int) -> Iterator[None]:
    """Dovecot tells an IDLE client of new mail at once through inotify: one instance per
    imap process, all under Dovecot's one mail user here. Past the kernel's per-user limit
    (128 by default) it logs "Inotify instance limit ... exceeded, disabling" and checks
    those mailboxes only every ``mailbox_idle_check_interval`` (30 s): a server-side delay
    that earlier runs of this benchmark measured as mailsync's (a p99 of 23-29 s). Raise
    the limit for the run where we may (root, a writable /proc/sys) and put it back after;
    otherwise say that the figures include Dovecot's fallback."""
    try:
        before = int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        say("inotify limit unknown: Dovecot may fall back to 30 s checks past it")
        yield
        return
    if before >= needed:
        say(f"fs.inotify.max_user_instances {before} (enough for {needed} imap processes)")
        yield
        return
    try:
        INOTIFY_INSTANCES.write_text(f"{needed}\n")
    except OSError:
        say(
            f"WARNING: fs.inotify.max_user_instances is {before}, below the {needed} imap "
            "processes of this run, and cannot be raised here: Dovecot checks the mailboxes "
            "past the limit only every 30 s, and the latencies below include that"
        )
        yield
        return
    say(f"fs.inotify.max_user_instances raised from {before} to {needed} for the run")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            INOTIFY_INSTANCES.write_text(f"{before}\n")


def run(args: argparse.Namespace) -> int:
    from tests.support.mailservers import ImapServerStartError, start_dovecot

    say("# realtime benchmark (IMAP IDLE)")
    say(
        f"machine: nproc {nproc()}, {cpu_model()}; load average at start {load_average()} "
        "(other work on the machine skews the figures)"
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="mailsync-realtime-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        server_url, server_from = stack.enter_context(database_server())
        redis_url, redis_from = stack.enter_context(redis_server())
        database_url = stack.enter_context(fresh_database(server_url))
        say(f"PostgreSQL ({server_from}), Redis ({redis_from})")
        # A watcher and a sync run per account at most, and the appenders: imap processes.
        stack.enter_context(
            enough_inotify_instances(2 * max(args.accounts, args.idle_accounts) + 256)
        )
        try:
            dovecot = start_dovecot(workdir, extra_config=DOVECOT_LIMITS)
        except ImapServerStartError as exc:
            raise BenchError(f"Dovecot did not start: {exc}") from exc
        stack.callback(dovecot.stop)
        env = process_env(database_url, redis_url, MAILSYNC_DB_POOL_SIZE="20")
        asyncio.run(measure(args, workdir, dovecot, env))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds the APPENDs span")
    parser.add_argument("--idle-accounts", type=int, default=1000, help="0: skip")
    parser.add_argument("--quiet-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
