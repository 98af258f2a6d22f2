"""The sync benchmark's headline: an initial sync as a user sees it, against mbsync and the
raw fetch in the same run.

One run: the raw ``imaplib`` fetch, ``mbsync -a`` with its defaults into a fresh Maildir,
then mailsync end to end: ``startSync`` through a ``mailsync api`` process, executed by a
``mailsync worker`` process started as in production (both long-running, started once for
all runs), until ``syncCompleted`` for the account reaches a websocket client. Meanwhile
the inbox query polls for the account's newest 50 messages: the time to first page is the
first answer equal to the final newest 50. CPU time is read from /proc for every process
involved: the worker and its parse processes, the PostgreSQL backends of the benchmark's
database (and, shared with other work, the server's own processes), Dovecot and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, BenchError
from bench.common import sql as _sql
from bench.common import tail as _tail

CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT = 600.0
FIRST_PAGE = 50
POLL_SECONDS = 0.05  # between inbox queries while waiting for the first page
SLOW_POLL_SECONDS = 2.0  # once a full page came back (each query costs CPU the sync needs)

SYNC_COMPLETED = (
    "subscription { syncCompleted(accountId: null) { account { id } initial newMessages } }"
)
FIRST_PAGE_QUERY = (
    "query($a: [ID!]) { inbox(filter: {accountIds: $a}, first: 50) { edges { node { id } } } }"
)


# -- CPU time from /proc -----------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def own_cpu(pid: int, *, reaped: bool = True) -> float:
    """utime + stime of the process (and, with ``reaped``, of its children it waited for)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def tree_cpu(pid: int) -> float:
    """CPU of a process and every descendant, live or reaped by a live one."""
    return own_cpu(pid) + sum(own_cpu(child) for child in descendants(pid))


@dataclass
class CpuSample:
    """Cumulative CPU seconds per process group at one moment."""

    values: dict[str, float]
    backends: dict[int, float]  # the benchmark database's PostgreSQL backends

    def since(self, earlier: CpuSample) -> dict[str, float]:
        spent = {k: v - earlier.values.get(k, 0.0) for k, v in self.values.items()}
        # A backend born during the run started from 0; one that ended took its CPU along.
        spent["PostgreSQL backends (this database)"] = sum(
            v - earlier.backends.get(pid, 0.0) for pid, v in self.backends.items()
        )
        return spent


@dataclass
class Processes:
    worker: int
    api: int
    dovecot: int
    database_url: str

    async def sample(self) -> CpuSample:
        rows = await _sql(
            self.database_url,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()",
        )
        postmaster = _postmaster(rows[0][0]) if rows else None
        background = 0.0
        if postmaster is not None:
            mine = {row[0] for row in rows}
            background = sum(
                own_cpu(pid, reaped=False)
                for pid in descendants(postmaster)
                if pid not in mine and _is_background(pid)
            )
        worker_own = own_cpu(self.worker, reaped=False)
        return CpuSample(
            values={
                "worker (main process)": worker_own,
                "worker's parse processes": tree_cpu(self.worker) - worker_own,
                "PostgreSQL server processes (shared with other work)": background,
                "Dovecot (master and imap)": tree_cpu(self.dovecot),
                "API process": tree_cpu(self.api),
            },
            backends={row[0]: own_cpu(row[0], reaped=False) for row in rows},
        )


def _postmaster(backend: int) -> int | None:
    fields = _stat(backend)
    return int(fields[1]) if fields else None


def _is_background(pid: int) -> bool:
    """Checkpointer, WAL writer, autovacuum...: PostgreSQL processes that are no client's
    (a backend's title names its client: "host(port)" or "[local]")."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False
    return "(" not in title and "[local]" not in title


# -- the API and the worker --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A long-running ``mailsync api`` or ``mailsync worker`` child process."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603  # our own command
                [sys.executable, "-m", "cli.main", *command],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.log.stem} exited; its log:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@contextlib.contextmanager
def services(env: dict[str, str], workdir: Path) -> Iterator[tuple[Service, Service, str]]:
    """(api, worker, the API's URL), running until the block ends."""
    port = free_port()
    api = Service(["api", "--port", str(port)], env, workdir / "api.log")
    try:
        worker = Service(["worker"], env, workdir / "worker.log")
        try:
            yield api, worker, f"http://127.0.0.1:{port}"
        finally:
            worker.stop()
    finally:
        api.stop()


async def wait_started(api: Service, worker: Service, url: str, within: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            api.check()
            worker.check()
            with contextlib.suppress(httpx.HTTPError):
                ready = (await http.get(f"{url}/healthz")).status_code == 200
                if ready and "Starting worker" in _tail(worker.log, 400):
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"the API or the worker did not start; {worker.log}")
            await asyncio.sleep(0.1)


# -- one end-to-end run ------------------------------------------------------------------


@dataclass
class EndToEnd:
    seconds: float  # startSync sent until syncCompleted arrived
    first_page: float | None  # startSync sent until the inbox answered the final newest 50
    stored: int
    mutation: float = 0.0  # startSync's own answer time
    full_page: float | None = None  # startSync sent until the inbox first showed 50 messages
    cpu: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # syncCompleted until the account's searchBacklog was 0 (the deferred search vectors
    # filled: core/sync/search_index.py); the next run starts only then.
    index_seconds: float = 0.0


async def _owner(settings: Any, tag: str) -> str:
    """A company and user made through the services; its API token."""
    from core.db import session_scope
    from core.identity.service import create_user
    from core.runtime import open_runtime

    async with (
        open_runtime(settings) as runtime,
        session_scope(runtime.session_factory) as session,
    ):
        created = await create_user(
            session, company_name=f"Bench e2e {tag}", email=f"e2e-{tag}@bench.example.com"
        )
    return str(created.token)


class Api:
    def __init__(self, http: Any) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise BenchError(f"GraphQL failed: {response.status_code} {body}")
        data: dict[str, Any] = body["data"]
        return data


async def _completed(ws: Any, account_id: str) -> float:
    """The monotonic time the account's initial syncCompleted arrived."""
    while True:
        message = await ws.receive_json()
        if message.get("type") == "next":
            data = message["payload"]["data"]["syncCompleted"]
            if data["account"]["id"] == account_id and data["initial"]:
                return time.monotonic()
        elif message.get("type") in ("error", "complete"):
            raise BenchError(f"the syncCompleted subscription ended: {message}")


async def end_to_end(
    settings: Any, url: str, dovecot: Any, processes: Processes, tag: str
) -> EndToEnd:
    """Add the account (not timed), then startSync and wait for syncCompleted."""
    import httpx
    from httpx_ws import AsyncWebSocketSession, aconnect_ws

    ws: AsyncWebSocketSession
    token = await _owner(settings, tag)
    headers = {"Authorization": f"Bearer {token}"}
    # Idle connections go before uvicorn's 5 s keep-alive closes them (see tests/conftest.py).
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers, limits=limits) as http:
        gql = Api(http)
        added = (
            await gql(
                "mutation($i: AddMailAccountInput!) { addMailAccount(input: $i) "
                "{ account { id } userErrors { code message } } }",
                {
                    "i": {
                        "emailAddress": f"e2e-{tag}@bench.example.com",
                        "imap": {
                            "host": dovecot.host,
                            "port": dovecot.port,
                            "security": "NONE",
                            "username": dovecot.username,
                            "password": dovecot.password,
                        },
                    }
                },
            )
        )["addMailAccount"]
        if added["userErrors"]:
            raise BenchError(f"addMailAccount: {added['userErrors']}")
        account_id = added["account"]["id"]
        async with (
            httpx.AsyncClient(timeout=RUN_TIMEOUT) as ws_http,
            aconnect_ws(
                url.replace("http://", "ws://") + "/graphql",
                ws_http,
                subprotocols=["graphql-transport-ws"],
                keepalive_ping_interval_seconds=None,
            ) as ws,
        ):
            await ws.send_json(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
            )
            if (await ws.receive_json(timeout=30)).get("type") != "connection_ack":
                raise BenchError("the API refused the websocket")
            await ws.send_json(
                {"id": "e2e", "type": "subscribe", "payload": {"query": SYNC_COMPLETED}}
            )
            await asyncio.sleep(0.5)  # the API's hub subscribed on Redis
            before = await processes.sample()
            load = os.getloadavg()
            completed = asyncio.create_task(_completed(ws, account_id))
            started = time.monotonic()
            begun = await gql(
                "mutation($i: StartSyncInput!) { startSync(input: $i) { userErrors { code } } }",
                {"i": {"accountId": account_id, "labels": ["INBOX"], "pastSync": "ALL"}},
            )
            if begun["startSync"]["userErrors"]:
                raise BenchError(f"startSync: {begun['startSync']['userErrors']}")
            mutation = time.monotonic() - started
            pages: list[tuple[float, list[str]]] = []
            deadline = started + RUN_TIMEOUT
            while not completed.done() and time.monotonic() < deadline:
                page = await gql(FIRST_PAGE_QUERY, {"a": [account_id]})
                ids = [edge["node"]["id"] for edge in page["inbox"]["edges"]]
                pages.append((time.monotonic(), ids))
                # Quick polls until a full page, then slow ones (each costs the API and
                # PostgreSQL CPU that the sync needs) to see whether it still changes.
                slow = len(ids) == FIRST_PAGE
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(completed), SLOW_POLL_SECONDS if slow else POLL_SECONDS
                    )
            done_at = await asyncio.wait_for(completed, max(1.0, deadline - time.monotonic()))
            after = await processes.sample()
        indexed_at = await _search_caught_up(gql, account_id, deadline)
        final = await gql(FIRST_PAGE_QUERY, {"a": [account_id]})
        newest = [edge["node"]["id"] for edge in final["inbox"]["edges"]]
    first_page = next((at - started for at, ids in pages if ids == newest), None)
    full_page = next((at - started for at, ids in pages if len(ids) == FIRST_PAGE), None)
    stored = await _sql(
        processes.database_url,
        "SELECT count(*) FROM messages WHERE account_id = $1",
        uuid.UUID(account_id),
    )
    return EndToEnd(
        seconds=done_at - started,
        first_page=first_page,
        stored=int(stored[0][0]),
        mutation=mutation,
        full_page=full_page,
        cpu=after.since(before),
        load=load,
        index_seconds=indexed_at - done_at,
    )


async def _search_caught_up(gql: Api, account_id: str, deadline: float) -> float:
    """The monotonic time the account's searchBacklog was first seen at 0."""
    while True:
        data = await gql(
            "query($id: ID!) { mailAccount(id: $id) { searchBacklog } }", {"id": account_id}
        )
        if data["mailAccount"]["searchBacklog"] == 0:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError("the search index did not catch up")
        await asyncio.sleep(POLL_SECONDS)


def median_line(name: str, values: list[float], unit: str = "s") -> str:
    shown = " ".join(f"{v:.2f}" for v in values)
    return (
        f"  {name:<44} median {statistics.median(values):6.2f} {unit}  "
        f"range {min(values):.2f}-{max(values):.2f}  runs: {shown}"
    )


@dataclass
class Run:
    """One run of the headline: the raw fetch, mbsync and mailsync end to end, in turn."""

    raw_wall: float
    mbsync_wall: float
    mbsync_cpu: float
    mailsync: EndToEnd


def render(
    runs: list[Run], *, required: float, goal: float, first_page_limit: float
) -> tuple[list[str], bool]:
    """The headline table and whether every run met the required bounds."""
    lines = [
        f"HEADLINE: initial sync end to end, {len(runs)} runs (startSync through `mailsync api` "
        "until syncCompleted at a websocket client; `mailsync worker` started as in production)",
        f"  {'run':<5}{'load 1/5/15':<17}{'raw s':>7}{'mbsync s':>10}{'mailsync s':>12}"
        f"{'ratio':>7}{'x raw':>7}{'1st page s':>12}{'stored':>8}",
    ]
    ok = True
    for number, run in enumerate(runs, 1):
        e2e = run.mailsync
        ratio = e2e.seconds / run.mbsync_wall
        first = f"{e2e.first_page:.2f}" if e2e.first_page is not None else "-"
        ok = ok and ratio <= required
        ok = ok and e2e.first_page is not None and e2e.first_page <= first_page_limit
        load = "/".join(f"{v:.2f}" for v in e2e.load)
        lines.append(
            f"  {number:<5}{load:<17}{run.raw_wall:>7.2f}{run.mbsync_wall:>10.2f}"
            f"{e2e.seconds:>12.2f}{ratio:>7.2f}{e2e.seconds / run.raw_wall:>7.1f}{first:>12}"
            f"{e2e.stored:>8}"
        )
    ratios = [r.mailsync.seconds / r.mbsync_wall for r in runs]
    firsts = [r.mailsync.first_page for r in runs if r.mailsync.first_page is not None]
    lines.append(median_line("mailsync end to end", [r.mailsync.seconds for r in runs]))
    lines.append(median_line("mbsync -a (defaults: FSync yes)", [r.mbsync_wall for r in runs]))
    lines.append(median_line("raw imaplib UID FETCH 1:*", [r.raw_wall for r in runs]))
    lines.append(
        median_line(f"ratio mailsync / mbsync (<= {required} every run, goal {goal})", ratios, "x")
    )
    if firsts:
        lines.append(
            median_line(f"time to first page (<= {first_page_limit:.0f} s every run)", firsts)
        )
    lines.append(
        median_line(
            "search index caught up after syncCompleted",
            [r.mailsync.index_seconds for r in runs],
        )
    )
    if len(firsts) < len(runs):
        lines.append(
            f"  {len(runs) - len(firsts)} run(s) never showed the final newest 50 before "
            "syncCompleted"
        )
    lines.append(
        "  verdict: " + ("every run met the required bounds" if ok else "MISSED in some run")
    )
    names = list(runs[0].mailsync.cpu) if runs else []
    lines.append("CPU seconds per process during mailsync's run (median of the runs; 2 cores):")
    for name in names:
        values = [r.mailsync.cpu.get(name, 0.0) for r in runs]
        lines.append(f"  {name:<56}{statistics.median(values):7.2f}")
    total = [sum(v for k, v in r.mailsync.cpu.items() if "shared" not in k) for r in runs]
    lines.append(
        f"  {'total (without the shared server processes)':<56}{statistics.median(total):7.2f}"
    )
    lines.append(
        f"  mbsync's own CPU: median {statistics.median([r.mbsync_cpu for r in runs]):.2f} s "
        "(Dovecot's work for mbsync not counted)"
    )
    return lines, ok
