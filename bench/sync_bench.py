"""Sync benchmark: mailsync's initial and no-change syncs against mbsync and raw imaplib.

    python -m bench.sync_bench [--messages N] [--runs R] [--profile auto|always|never]
                               [--strict]

The headline (``bench.sync_e2e``): ``--runs`` times (default 5) the raw fetch, mbsync with
its defaults, and mailsync end to end (``startSync`` through a ``mailsync api`` process
until ``syncCompleted`` reaches a websocket client, run by a production-started ``mailsync
worker``), with the time to the first inbox page and every process's CPU time. Before it,
the secondary section, on this machine:

1. generates a realistic mailbox (``tests.support.mail_corpus``: text and HTML mail,
   threads, ~10% with 10-40 KB attachments, several charsets) straight into the Maildir
   of a private Dovecot (``tests.support.mailservers.start_dovecot``) and lets Dovecot
   index it with one SELECT (outside every figure);
2. the raw limit: one plain ``imaplib`` session doing ``UID FETCH 1:* (BODY.PEEK[] FLAGS)``;
3. mailsync: a company, user and account made through the services (``create_user``,
   ``AccountService.add``, ``SyncService.start`` with labels ["INBOX"] and pastSync ALL),
   then a child Python process that does what ``mailsync worker`` does -- one runtime, the
   worker's job function ``workers.sync_job.sync_account`` (``AccountSyncRun`` with the
   worker's tuning) -- twice: the initial sync (Dovecot -> PostgreSQL, every message must
   be stored) and a no-change pass; then a no-change pass in a fresh process;
4. the peer: ``mbsync -a`` (Debian package ``isync``) pulling INBOX into a local Maildir,
   then again with nothing to do; and, as a reference, with ``FSync no``;
5. with ``--profile`` (``auto``: only when mailsync's initial sync is slower than mbsync),
   another initial sync into a new account under cProfile, summarised by component
   (aioimaplib, MIME parsing, SQLAlchemy, waiting) and top functions.

PostgreSQL and Redis: MAILSYNC_TEST_DATABASE_URL / MAILSYNC_TEST_REDIS_URL when set, else
embedded servers (``cli.embedded``) under ``.mailsync/bench/``; the benchmark creates a
fresh, migrated database and drops it at the end. Everything else lives in a temporary
directory that is removed on exit (``--keep`` keeps both for inspection).

mailsync's figures are the wall time of the job function in the worker process; start-up
and imports, paid once per long-running worker, are printed on their own line. mbsync's
figures are its whole process. Peak RSS is the process's VmHWM. Step timers in the worker
(wrappers around a few functions; what runs is unchanged) show where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import imaplib
import json
import os
import platform
import pstats
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.common import (
    REPO,
    BenchError,
    database_server,
    fresh_database,
    redis_server,
    run_main,
)
from bench.common import cpu_model as _cpu_model
from bench.common import nproc as _nproc
from bench.common import say as _say
from bench.common import sql as _sql
from bench.common import tail as _tail

CHILD_TIMEOUT = 3600.0  # seconds for one sync or one mbsync run
T = TypeVar("T")
# No-change passes of each side: a pass takes tens of milliseconds, so one sample is noise.
NO_CHANGE_PASSES = 5
MBSYNC_SETTLE_SECONDS = 1.5

# Targets from the issue.
INITIAL_VS_MBSYNC_REQUIRED = 1.0
INITIAL_VS_MBSYNC_GOAL = 0.5
INITIAL_VS_RAW_GOAL = 8.0
NO_CHANGE_VS_MBSYNC_REQUIRED = 1.0
PEAK_RSS_LIMIT_MB = 300.0
FIRST_PAGE_REQUIRED = 1.0  # seconds from startSync until the inbox shows the newest 50

# Message flags as a mailbox of someone who reads most mail.
SEEN_SHARE, FLAGGED_SHARE, ANSWERED_SHARE = 0.85, 0.05, 0.20

_DATE_HEADER = re.compile(rb"^Date: ([^\r\n]+)", re.MULTILINE)


# -- small helpers -----------------------------------------------------------------------


def _mb(n_bytes: float) -> float:
    return n_bytes / 1e6


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(  # noqa: S603  # fixed commands
            command, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


@dataclass
class Measured:
    """A finished child process: exit code, wall time, CPU and peak RSS."""

    returncode: int
    wall: float
    cpu: float
    peak_rss: int  # bytes
    log: Path


def _peak_rss(pid: int | str = "self") -> int:
    """VmHWM: the peak RSS of the process since its exec (0 when unknown)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _children_peak_rss() -> int:
    import psutil

    return sum(_peak_rss(child.pid) for child in psutil.Process().children(recursive=True))


def _rss(pid: int | str = "self") -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_measured(
    command: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``command`` to completion. Wall time and CPU come from a blocking ``wait4``; the
    peak RSS is sampled from /proc (VmHWM, a high-water mark) by a thread every few
    milliseconds, because ``ru_maxrss`` of a child started with vfork also counts this
    (large) parent process."""
    import threading

    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603  # our own commands
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    peak = [0]
    done, timed_out = threading.Event(), threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _peak_rss(process.pid))
            if time.perf_counter() - start > CHILD_TIMEOUT:
                timed_out.set()
                process.kill()
                return

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(process.pid, 0)
        process.returncode = -9
        raise
    finally:
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        raise BenchError(f"{command[0]} ran longer than {CHILD_TIMEOUT:.0f} s; log {log}")
    return Measured(
        returncode=process.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=peak[0],
        log=log,
    )


# -- the mailbox -------------------------------------------------------------------------


def _mail_owner() -> tuple[int, int]:
    """Who owns mail files: as root Dovecot's mail processes run as the dovecot user."""
    if os.getuid() == 0:
        import pwd

        owner = pwd.getpwnam("dovecot")
        return owner.pw_uid, owner.pw_gid
    return os.getuid(), os.getgid()


def _maildir_flags(rng: random.Random) -> str:
    chosen = (
        ("F", rng.random() < FLAGGED_SHARE),
        ("R", rng.random() < ANSWERED_SHARE),
        ("S", rng.random() < SEEN_SHARE),
    )
    return "".join(letter for letter, on in chosen if on)  # Maildir wants them sorted


def _arrival(raw: bytes, fallback: float) -> float:
    match = _DATE_HEADER.search(raw, 0, 16384)
    if match:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            return parsedate_to_datetime(match.group(1).decode("ascii", "replace")).timestamp()
    return fallback


@dataclass
class Mailbox:
    count: int = 0
    imap_bytes: int = 0  # the size IMAP delivers (CRLF), what RFC822.SIZE says
    attachments: int = 0
    seconds: float = 0.0
    how: str = ""


def _messages(count: int, seed: int) -> Iterator[tuple[int, bytes, str]]:
    """(index, message with CRLF, Maildir flag letters), in arrival order."""
    from tests.support.mail_corpus import realistic_message

    rng = random.Random(seed)  # noqa: S311  # test data, not secrets
    flag_rng = random.Random(seed ^ 0x5EED)  # noqa: S311
    pool: list[str] = []
    for index in range(count):
        raw = realistic_message(rng, index, thread_pool=pool)
        yield index, raw, _maildir_flags(flag_rng)


def write_maildir(maildir: Path, count: int, seed: int) -> Mailbox:
    """Write the messages as Dovecot's own Maildir files would be (LF line endings, S= and
    W= sizes in the name); Dovecot assigns UIDs in file-name order when it first looks."""
    uid, gid = _mail_owner()
    start = time.perf_counter()
    for sub in ("", "cur", "new", "tmp"):
        directory = maildir / sub
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, uid, gid)
    mailbox = Mailbox(how="written into the Maildir")
    base = int(time.time()) - count - 10
    pid = os.getpid()
    for index, raw, flags in _messages(count, seed):
        on_disk = raw.replace(b"\r\n", b"\n")
        name = f"{base + index}.M{index:06d}P{pid}.bench,S={len(on_disk)},W={len(raw)}:2,{flags}"
        path = maildir / "cur" / name
        path.write_bytes(on_disk)
        os.chown(path, uid, gid)
        arrived = _arrival(raw, float(base + index))
        os.utime(path, (arrived, arrived))  # Maildir's INTERNALDATE is the file's mtime
        mailbox.count += 1
        mailbox.imap_bytes += len(raw)
        mailbox.attachments += b"Content-Disposition: attachment" in raw
    mailbox.seconds = time.perf_counter() - start
    return mailbox


def _imap_flags(letters: str) -> str:
    names = {"F": "\\Flagged", "R": "\\Answered", "S": "\\Seen"}
    return "(" + " ".join(names[letter] for letter in letters) + ")"


def append_messages(server: Any, count: int, seed: int) -> Mailbox:
    """The same messages through IMAP APPEND, one at a time (the slow, portable way)."""
    start = time.perf_counter()
    mailbox = Mailbox(how="APPENDed over IMAP")
    imap = imaplib.IMAP4(server.host, server.port)
    try:
        imap.login(server.username, server.password)
        base = time.time() - count - 10
        for index, raw, flags in _messages(count, seed):
            arrived = _arrival(raw, base + index)
            typ, data = imap.append("INBOX", _imap_flags(flags), arrived, raw)
            if typ != "OK":
                raise BenchError(f"APPEND of message {index} failed: {data!r}")
            mailbox.count += 1
            mailbox.imap_bytes += len(raw)
            mailbox.attachments += b"Content-Disposition: attachment" in raw
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    mailbox.seconds = time.perf_counter() - start
    return mailbox


def first_select(server: Any, expected: int) -> float:
    """Dovecot indexes a Maildir it has not seen on the first SELECT: do that outside every
    measurement, and check that the server sees every message."""
    start = time.perf_counter()
    imap = imaplib.IMAP4(server.host, server.port)
    try:
        imap.login(server.username, server.password)
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK":
            raise BenchError(f"SELECT INBOX failed: {data!r}")
        exists = int(data[0] or 0)
        imap.uid("FETCH", "1:*", "(FLAGS)")  # warms the flags part of the index too
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    if exists != expected:
        raise BenchError(f"Dovecot sees {exists} messages in INBOX, not {expected}")
    return time.perf_counter() - start


@dataclass
class RawFetch:
    wall: float
    cpu: float
    count: int
    body_bytes: int


def raw_fetch(server: Any) -> RawFetch:
    """The raw limit: one plain imaplib session fetching every message with its flags."""
    start, cpu_start = time.perf_counter(), time.process_time()
    imap = imaplib.IMAP4(server.host, server.port)
    try:
        imap.login(server.username, server.password)
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK":
            raise BenchError(f"SELECT INBOX failed: {data!r}")
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[] FLAGS)")
        if typ != "OK":
            raise BenchError(f"UID FETCH 1:* failed: {data!r}")
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    items: list[Any] = list(data)  # (envelope, literal) tuples and b")" separators
    bodies: list[bytes] = [item[1] for item in items if isinstance(item, tuple)]
    return RawFetch(wall, cpu, len(bodies), sum(len(body) for body in bodies))


# -- mailsync ----------------------------------------------------------------------------


@dataclass
class Account:
    id: uuid.UUID
    owner_email: str


async def _create_account(settings: Any, server: Any, tag: str) -> Account:
    """Company, user and account through the services, then start syncing INBOX (ALL)."""
    from arq.constants import default_queue_name, job_key_prefix

    from core.accounts.inputs import NewAccount, ServerFields
    from core.accounts.service import AccountService
    from core.db import session_scope
    from core.identity.service import create_user
    from core.identity.viewer import Viewer
    from core.jobs import sync_job_id
    from core.models import ConnectionSecurity, PastSync, Sharing
    from core.runtime import open_runtime
    from core.sync.service import SyncService

    email = f"bench-{tag}@bench.example.com"
    async with open_runtime(settings) as runtime:
        async with session_scope(runtime.session_factory) as session:
            created = await create_user(session, company_name=f"Bench {tag}", email=email)
        viewer = Viewer(
            user_id=created.user.id,
            company_id=created.company.id,
            role=created.user.role,
            plan=created.company.plan,
        )
        imap = ServerFields(
            host=server.host,
            password=server.password,
            port=server.port,
            security=ConnectionSecurity.NONE,
            username=server.username,
        )
        async with session_scope(runtime.session_factory) as session:
            account = await AccountService(session, runtime).add(
                viewer, NewAccount(email_address=f"inbox-{tag}@bench.example.com", imap=imap)
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
        # start() queued the arq job; the benchmark runs the job function itself, so take
        # it off the queue (the Redis may be shared with a running worker or tests).
        job_id = sync_job_id(account_id)
        await runtime.redis.zrem(default_queue_name, job_id)
        await runtime.redis.delete(job_key_prefix + job_id)
    return Account(account_id, email)


@dataclass
class Stored:
    messages: int
    threads: int
    with_attachments: int
    unread: int
    status: str
    last_error: str | None


async def _stored(database_url: str, account_id: uuid.UUID) -> Stored:
    counts = await _sql(
        database_url,
        "SELECT count(*), count(DISTINCT thread_id), count(*) FILTER (WHERE has_attachments),"
        " count(*) FILTER (WHERE NOT is_read) FROM messages WHERE account_id = $1",
        account_id,
    )
    account = await _sql(
        database_url,
        "SELECT status::text, last_error FROM mail_accounts WHERE id = $1",
        account_id,
    )
    messages, threads, attachments, unread = counts[0]
    status, last_error = account[0] if account else ("(no account)", None)
    return Stored(messages, threads, attachments, unread, status, last_error)


@dataclass
class Job:
    """One sync job as the worker process timed it."""

    seconds: float  # wall time of the job function
    cpu: float  # CPU time of the worker process during the job
    result: dict[str, int]
    peak_rss: int  # the worker's VmHWM when the job ended
    run_delay: float = 0.0  # seconds the worker was runnable but waited for a CPU
    steps: dict[str, list[float]] = field(default_factory=dict)  # name: [wall, cpu, calls]
    growth: dict[str, float] = field(default_factory=dict)  # name: last/first call time
    first: dict[str, float] = field(default_factory=dict)  # name: its first call's end


@dataclass
class WorkerRun:
    """A worker process that ran one or more sync jobs of the account, one after another."""

    process: Measured
    import_seconds: float
    rss_after_import: int
    jobs: list[Job]
    stored: Stored


def run_worker(
    *,
    account: Account,
    jobs: int,
    env: dict[str, str],
    database_url: str,
    workdir: Path,
    label: str,
    profile: Path | None = None,
) -> WorkerRun:
    """A child process that syncs the account ``jobs`` times in a row, as a worker running
    that account's sync jobs would (later jobs find warm connection pools and caches)."""
    result_file = workdir / f"{label}.json"
    command = [sys.executable, "-m", "bench.sync_bench", "--child-sync", str(account.id)]
    command += ["--child-jobs", str(jobs), "--child-result", str(result_file)]
    if profile is not None:
        command += ["--child-profile", str(profile)]
    process = run_measured(command, log=workdir / f"{label}.log", env=env, cwd=REPO)
    if process.returncode != 0 or not result_file.exists():
        raise BenchError(
            f"the mailsync worker process ({label}) exited with {process.returncode}; "
            f"its output ({process.log}):\n{_tail(process.log)}"
        )
    report = json.loads(result_file.read_text())
    done = [Job(**job) for job in report["jobs"]]
    for number, job in enumerate(done, 1):
        if job.result is None:
            raise BenchError(
                f"mailsync job {number} ({label}) did nothing (account locked, paused or not "
                f"started); output ({process.log}):\n{_tail(process.log)}"
            )
    stored = asyncio.run(_stored(database_url, account.id))
    process.peak_rss = max(process.peak_rss, *(job.peak_rss for job in done))
    return WorkerRun(
        process=process,
        import_seconds=report["import_seconds"],
        rss_after_import=report["rss_after_import"],
        jobs=done,
        stored=stored,
    )


def _run_delay() -> float:
    """Seconds this process has waited on a run queue (other load on the machine)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    return 0.0


CHUNK_WRITES = "chunk transactions (the 5 below)"  # a step that holds others


SEARCH_CATCH_UP = "search vectors filled (after the run)"


class StepTimers:
    """Wall and CPU time of a few steps of the sync, measured in the worker by wrapping
    functions (measurement only: what runs is unchanged). The sync awaits one step at a
    time, so a step's wall time is its own; an awaited step's wall includes waiting for
    the server it talks to."""

    # (module, owner or None, attribute, name); "of which" steps are nested in the one above.
    POINTS = (
        ("core.mail.imap", None, "_connect_and_login", "IMAP connect + login"),
        ("core.mail.imap", "ImapConnection", "logout", "IMAP logout"),
        ("core.mail.mailbox", "MailboxOps", "status", "IMAP STATUS (unchanged?)"),
        ("core.mail.mailbox", "MailboxOps", "select", "IMAP SELECT"),
        ("core.mail.mailbox", "MailboxOps", "uid_search", "IMAP UID SEARCH"),
        ("core.mail.mailbox", "MailboxOps", "fetch_uids", "IMAP UID FETCH of UIDs"),
        ("core.mail.mailbox", "MailboxOps", "fetch_flags", "IMAP UID FETCH of flags"),
        ("core.mail.mailbox", "MailboxOps", "fetch_sizes", "IMAP UID FETCH of sizes, dates"),
        ("core.mail.mailbox", "MailboxOps", "fetch_messages", "IMAP UID FETCH of bodies"),
        ("core.sync.parse_pool", "MessageParser", "parse_for_rows", "MIME parsing (awaited; pool)"),
        ("core.sync.pipeline", "MessagePipeline", "_write", CHUNK_WRITES),
        ("core.sync.pipeline", None, "build_rows", "build_rows (rows from messages)"),
        ("core.threads.repository", None, "thread_ids_for", "  of which thread lookup query"),
        ("core.sync.repository", None, "rekey_parked", "rekey_parked query"),
        ("core.sync.repository", None, "insert_messages", "insert_messages (INSERT)"),
        ("core.threads.repository", None, "remember_thread_keys", "remember_thread_keys"),
        ("sqlalchemy.ext.asyncio", "AsyncSession", "commit", "commits"),
        ("core.events", "EventBus", "publish", "events to Redis"),
        ("core.sync.search_index", None, "catch_up", SEARCH_CATCH_UP),
    )

    def __init__(self) -> None:
        self.steps: dict[str, list[float]] = {}
        self.calls: dict[str, list[float]] = {}
        self.first: dict[str, float] = {}  # name: when its first call ended, from job start
        self.begin = time.perf_counter()

    def install(self) -> None:
        import importlib
        import inspect
        import logging

        for module_name, owner_name, attribute, name in self.POINTS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, attribute, None)
            if original is None:  # the code changed: time what is still there
                logging.getLogger(__name__).warning("no %s.%s to time", owner, attribute)
                continue
            if inspect.iscoroutinefunction(original):
                setattr(owner, attribute, self._async(original, name))
            else:
                setattr(owner, attribute, self._sync(original, name))

    def _add(self, name: str, wall: float, cpu: float) -> None:
        took = time.perf_counter() - wall
        step = self.steps.setdefault(name, [0.0, 0.0, 0])
        step[0] += took
        step[1] += time.process_time() - cpu
        step[2] += 1
        self.calls.setdefault(name, []).append(took)
        self.first.setdefault(name, time.perf_counter() - self.begin)

    def growth(self) -> dict[str, float]:
        """Mean time of the last tenth of the calls over the first tenth's (>= 20 calls):
        about 1 for a step whose cost does not grow as the mailbox fills up."""
        found = {}
        for name, times in self.calls.items():
            if len(times) >= 20:
                tenth = len(times) // 10
                first, last = sum(times[:tenth]), sum(times[-tenth:])
                if first > 0:
                    found[name] = last / first
        return found

    def _async(self, original: Any, name: str) -> Any:
        import functools

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return await original(*args, **kwargs)
            finally:
                self._add(name, wall, cpu)

        return timed

    def _sync(self, original: Any, name: str) -> Any:
        import functools

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(name, wall, cpu)

        return timed


def child_sync(account_id: str, jobs: int, result_file: Path, profile: Path | None) -> int:
    """The child process: the worker's job function (``sync_account``) for one account,
    ``jobs`` times; with ``profile``, the first job runs under cProfile."""
    import logging

    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from core.runtime import open_runtime
    from core.settings import Settings, load_settings
    from core.sync.parse_pool import MessageParser
    from core.sync.run import tuning_for
    from workers.sync_job import sync_account

    import_seconds = time.perf_counter() - started
    rss_after_import = _rss()
    settings = load_settings(Settings)
    parser = MessageParser(settings.parse_processes)  # as `mailsync worker` runs it
    timers = StepTimers()
    if profile is None:
        timers.install()

    async def job(runtime: Any) -> dict[str, Any]:
        timers.steps, timers.calls, timers.first = {}, {}, {}
        begin, cpu, delay = time.perf_counter(), time.process_time(), _run_delay()
        timers.begin = begin
        ctx = {"runtime": runtime, "tuning": tuning_for(settings, parser)}
        result = await sync_account(ctx, account_id)
        return {
            "seconds": time.perf_counter() - begin,
            "cpu": time.process_time() - cpu,
            "result": result,
            # The worker and its parse processes: what the machine must hold for it.
            "peak_rss": _peak_rss() + _children_peak_rss(),
            "run_delay": _run_delay() - delay,
            "steps": timers.steps,
            "growth": timers.growth(),
            "first": timers.first,
        }

    async def all_jobs() -> list[dict[str, Any]]:
        # As `mailsync worker` does: one runtime (engine, pools, Redis) for the process's
        # life, the job function called for each job. Connections are opened lazily, so
        # the first job pays for connecting to PostgreSQL as well as to the IMAP server.
        done = []
        async with open_runtime(settings) as runtime:
            for number in range(jobs):
                if number == 0 and profile is not None:
                    import cProfile

                    profiler = cProfile.Profile()
                    profiler.enable()
                    try:
                        done.append(await job(runtime))
                    finally:
                        profiler.disable()
                        profiler.dump_stats(str(profile))
                else:
                    done.append(await job(runtime))
        return done

    done = asyncio.run(all_jobs())
    result_file.write_text(
        json.dumps(
            {
                "jobs": done,
                "import_seconds": import_seconds,
                "rss_after_import": rss_after_import,
            }
        )
    )
    return 0


# -- mbsync ------------------------------------------------------------------------------


def mbsync_config(directory: Path, server: Any, *, fsync: bool = True) -> Path:
    """INBOX pulled into a Maildir under ``directory``. mbsync's default (``FSync yes``)
    fsyncs every message it stores; ``fsync=False`` shows what that costs."""
    near = directory / "maildir"
    near.mkdir(parents=True)
    config = directory / "mbsyncrc"
    config.write_text(
        "\n".join(
            [
                f"FSync {'yes' if fsync else 'no'}",
                "",
                "IMAPAccount bench",
                f"Host {server.host}",
                f"Port {server.port}",
                f'User "{server.username}"',
                f'Pass "{server.password}"',
                "SSLType None",
                "AuthMechs LOGIN",
                "",
                "IMAPStore bench-far",
                "Account bench",
                "",
                "MaildirStore bench-near",
                f"Path {near}/",
                f"Inbox {near}/INBOX",
                "",
                "Channel bench",
                "Far :bench-far:",
                "Near :bench-near:",
                "Patterns INBOX",
                "Sync Pull",
                "Create Near",
                "SyncState *",
                "",
            ]
        )
    )
    config.chmod(0o600)
    return config


def run_mbsync(config: Path, workdir: Path, label: str) -> Measured:
    env = {**os.environ, "HOME": str(config.parent)}
    measured = run_measured(
        ["mbsync", "-c", str(config), "-a"], log=workdir / f"{label}.log", env=env
    )
    if measured.returncode != 0:
        raise BenchError(
            f"mbsync ({label}) exited with {measured.returncode}:\n{_tail(measured.log)}"
        )
    return measured


def maildir_count(inbox: Path) -> int:
    return sum(1 for sub in ("cur", "new") for _ in (inbox / sub).iterdir())


# -- profile summary ---------------------------------------------------------------------

_GROUPS = (
    ("aioimaplib", "aioimaplib (IMAP client library)"),
    ("core/mail/protocol.py", "core.mail.protocol (aioimaplib reader patch)"),
    ("core/mail/mailbox.py", "core.mail.mailbox (FETCH response -> messages)"),
    ("core/mail/parsing/", "core.mail.parsing (MIME parsing)"),
    ("/email/", "stdlib email (called by parsing)"),
    ("/encodings/", "codecs (charset decoding)"),
    ("/re/", "re (compiling patterns; stdlib email compiles one per MIME boundary)"),
    ("_strptime", "strptime (INTERNALDATE)"),
    ("core/sync/", "core.sync (rows, repository, folder)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("asyncpg", "asyncpg (PostgreSQL driver)"),
    ("/asyncio/", "asyncio event loop"),
)
_IDLE = "idle: waiting on sockets (Dovecot, PostgreSQL)"


def _group(filename: str, function: str) -> str | None:
    if filename == "~":
        if "poll' of 'select.epoll" in function or "select.select" in function:
            return _IDLE
        return None  # a builtin: charged to whoever called it
    for needle, name in _GROUPS:
        if needle in filename:
            return name
    if "/bench/" in filename or "cProfile" in filename:
        return "benchmark harness"
    return "other Python code"


def summarize_profile(path: Path, wall: float) -> list[str]:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats internals
    shares: dict[str, float] = defaultdict(float)

    def owner(key: Any, depth: int = 0) -> str:
        group = _group(key[0], key[2])
        if group is not None or depth > 4:
            return group or "other builtins"
        callers = raw.get(key, (0, 0, 0, 0, {}))[4]
        if not callers:
            return "other builtins"
        top = max(callers.items(), key=lambda item: item[1][2])[0]
        return owner(top, depth + 1)

    for key, (_cc, _nc, tottime, _ct, callers) in raw.items():
        group = _group(key[0], key[2])
        if group is not None:
            shares[group] += tottime
            continue
        # A builtin (bytes.find, re.match, ...): split its time among its callers' groups.
        if callers:
            for caller, edge in callers.items():
                shares[owner(caller)] += edge[2]
        else:
            shares["other builtins"] += tottime
    total = sum(shares.values()) or 1.0
    lines = [
        f"cProfile of an initial sync ({wall:.1f} s under the profiler; profiling slows "
        "Python code, so read shares, not seconds). Own time by component, builtins "
        "charged to their callers:"
    ]
    for name, seconds in sorted(shares.items(), key=lambda item: -item[1]):
        if seconds / total >= 0.005:
            lines.append(f"  {100 * seconds / total:5.1f}%  {seconds:7.2f} s  {name}")
    imap_client = sum(
        seconds
        for name, seconds in shares.items()
        if name.startswith(("aioimaplib", "core.mail.protocol", "core.mail.mailbox"))
    )
    lines.append(
        f"  => IMAP client side (aioimaplib + core.mail.protocol + core.mail.mailbox): "
        f"{100 * imap_client / total:.1f}% of the profiled time"
    )

    # CPU spent inside key steps (coroutines: only while they run, not while they wait).
    steps = (
        ("core/mail/mailbox.py", "fetch_messages", "MailboxOps.fetch_messages"),
        ("core/mail/protocol.py", "_handle_responses", "protocol._handle_responses"),
        ("aioimaplib", "data_received", "aioimaplib data_received"),
        ("core/mail/parsing/", "parse_message", "parsing.parse_message"),
        ("core/sync/rows.py", "build_rows", "rows.build_rows"),
        ("core/threads/repository.py", "thread_ids_for", "threads.thread_ids_for"),
        ("core/sync/repository.py", "insert_messages", "repository.insert_messages"),
        ("core/sync/repository.py", "rekey_parked", "repository.rekey_parked"),
        ("sqlalchemy", "_compile_w_cache", "SQLAlchemy statement compilation"),
    )
    lines.append("Cumulative time in key steps (for coroutines: while running, not waiting):")
    for needle, function, label in steps:
        cumulative = sum(
            value[3] for key, value in raw.items() if needle in key[0] and key[2] == function
        )
        if cumulative:
            lines.append(f"  {100 * cumulative / total:5.1f}%  {cumulative:7.2f} s  {label}")

    lines.append("Top 15 functions by own time:")
    top = sorted(raw.items(), key=lambda item: -item[1][2])[:15]
    for (filename, line, function), (_cc, calls, tottime, _cumtime, _callers) in top:
        where = filename
        for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
            if marker in where:
                where = where.split(marker, 1)[1]
        lines.append(
            f"  {100 * tottime / total:5.1f}%  {tottime:7.2f} s  {calls:>9} calls  "
            f"{where}:{line}({function})"
        )
    return lines


# -- the report --------------------------------------------------------------------------


@dataclass
class Report:
    messages: int = 0
    mailbox: Mailbox | None = None
    index_seconds: float = 0.0
    raw: RawFetch | None = None
    worker: WorkerRun | None = None  # job 1: initial sync, job 2: no-change pass
    cold_no_change: WorkerRun | None = None
    mb_initial: Measured | None = None
    mb_initial_count: int = 0
    mb_no_change: Measured | None = None
    mb_nofsync: Measured | None = None
    headline: list[Any] = field(default_factory=list)  # bench.sync_e2e.Run, one per run
    environment: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def initial(self) -> Job | None:
        return self.worker.jobs[0] if self.worker and self.worker.jobs else None

    @property
    def no_change(self) -> Job | None:
        """The median of the worker's no-change passes (jobs 2 onwards), by wall time."""
        if not self.worker or len(self.worker.jobs) < 2:
            return None
        return _median_by(self.worker.jobs[1:], lambda job: job.seconds)


def _median_by(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The middle item by ``key`` (the lower middle of an even count)."""
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _verdict(value: float, required: float | None, goal: float | None) -> str:
    if required is not None and value > required:
        return "MISSED (required)"
    if goal is not None and value > goal:
        return "ok; goal missed" if required is not None else "goal missed"
    if required is None and goal is None:
        return ""
    return "ok" if goal is None else "ok; goal met"


def breakdown(job: Job, what: str) -> list[str]:
    """Where a sync job's wall time went, from the worker's step timers."""
    lines = [
        f"Where mailsync's {what} spent its {job.seconds:.2f} s (step timers in the worker, no "
        "profiler; wait = wall - worker CPU: the server's work, network, or a busy CPU)",
        f"  {'step':<40}{'wall s':>8}{'CPU s':>8}{'wait s':>8}{'calls':>7}{'of job':>8}"
        f"{'growth':>8}{'1st end':>9}",
    ]
    top_level = sum(
        step[0]
        for name, step in job.steps.items()
        if not name.startswith(" ") and name != CHUNK_WRITES
    )
    order = [point[3] for point in StepTimers.POINTS]
    for name in order:
        if name not in job.steps:
            continue
        wall, cpu, calls = job.steps[name]
        share = 100 * wall / job.seconds if job.seconds else 0.0
        growth = f"{job.growth[name]:.1f}x" if name in job.growth else ""
        first = f"{job.first[name]:.3f}" if name in job.first else ""
        lines.append(
            f"  {name:<40}{wall:>8.2f}{cpu:>8.2f}{wall - cpu:>8.2f}{int(calls):>7}{share:>7.1f}%"
            f"{growth:>8}{first:>9}"
        )
    rest = job.seconds - top_level
    share = 100 * rest / job.seconds if job.seconds else 0.0
    lines.append(f"  {'everything else (account rows, ...)':<40}{rest:>8.2f}{'':>23}{share:>7.1f}%")
    lines.append(
        f"  worker CPU {job.cpu:.2f} s of {job.seconds:.2f} s; of the rest, "
        f"{job.run_delay:.2f} s runnable but waiting for a CPU (other load on the machine)"
    )
    if job.growth:
        lines.append(
            "  growth: mean time of the last tenth of a step's calls / the first tenth's "
            "(about 1.0 when the cost does not grow as the mailbox fills up); 1st end: "
            "seconds from the job's start until the step's first call ended"
        )
    return lines


def render(report: Report) -> tuple[list[str], bool]:
    """The table, and whether every required target was met."""
    lines: list[str] = []
    n = report.messages
    box = report.mailbox
    megabytes = _mb(box.imap_bytes) if box else 0.0
    lines += ["", "=" * 100]
    if box:
        lines.append(
            f"mailsync sync benchmark: {box.count:,} messages in INBOX, {megabytes:.1f} MB, "
            f"{box.attachments:,} with attachments"
        )
    else:
        lines.append(f"mailsync sync benchmark: {n:,} messages (mailbox not built)")
    lines.extend(report.environment)
    if box:
        lines.append(
            f"setup: mailbox {box.how} in {box.seconds:.1f} s; Dovecot's first SELECT "
            f"(indexing; not part of any figure below) {report.index_seconds:.1f} s"
        )
    lines.append("-" * 100)
    ok = True
    if report.headline:
        from bench import sync_e2e

        headline, ok = sync_e2e.render(
            report.headline,
            required=INITIAL_VS_MBSYNC_REQUIRED,
            goal=INITIAL_VS_MBSYNC_GOAL,
            first_page_limit=FIRST_PAGE_REQUIRED,
        )
        lines.extend(headline)
        lines.append("-" * 100)
        lines.append(
            "Secondary: the job alone, in a child process calling the worker's job function"
        )
    lines.append(
        f"{'measurement':<46}{'wall s':>8}{'CPU s':>8}{'peak RSS':>10}{'msg/s':>9}{'MB/s':>7}"
    )

    def row(name: str, wall: float | None, cpu: float | None, rss: int | None, moved: bool) -> None:
        if wall is None:
            lines.append(f"{name:<46}{'-':>8}")
            return
        rate = f"{n / wall:,.0f}" if moved and wall > 0 else ""
        mbs = f"{megabytes / wall:.1f}" if moved and wall > 0 else ""
        cpu_text = f"{cpu:.2f}" if cpu is not None else ""
        rss_text = f"{_mb(rss):.0f} MB" if rss else ""
        lines.append(f"{name:<46}{wall:>8.2f}{cpu_text:>8}{rss_text:>10}{rate:>9}{mbs:>7}")

    raw, whole, no_change = report.raw, report.initial, report.no_change
    # The job goes on after syncCompleted to fill the deferred search vectors; the figure
    # compared with mbsync is the sync itself, the job's wall without that last step.
    initial, index_step = whole, None
    if whole is not None and SEARCH_CATCH_UP in whole.steps:
        index_step = whole.steps[SEARCH_CATCH_UP]
        initial = dataclasses.replace(whole, seconds=whole.seconds - index_step[0])
    worker, cold = report.worker, report.cold_no_change
    cold_job = cold.jobs[0] if cold else None
    mb_initial, mb_no_change, mb_nofsync = report.mb_initial, report.mb_no_change, report.mb_nofsync
    rss = worker.process.peak_rss if worker else None

    def job_row(name: str, job: Job | None, moved: bool) -> None:
        if job is None:
            row(name, None, None, None, moved)
        else:
            row(name, job.seconds, job.cpu, job.peak_rss, moved)

    def process_row(name: str, measured: Measured | None, moved: bool) -> None:
        if measured is None:
            row(name, None, None, None, moved)
        else:
            row(name, measured.wall, measured.cpu, measured.peak_rss, moved)

    if raw is None:
        row("raw imaplib UID FETCH 1:* (BODY.PEEK[] FLAGS)", None, None, None, True)
    else:
        row("raw imaplib UID FETCH 1:* (BODY.PEEK[] FLAGS)", raw.wall, raw.cpu, None, True)
    job_row("mailsync initial sync (worker, job 1)", initial, True)
    if index_step is not None:
        row("  then: search vectors filled (same job)", index_step[0], None, None, False)
    process_row("mbsync initial (mbsync -a)", mb_initial, True)
    process_row("mbsync initial with FSync no (reference)", mb_nofsync, True)
    job_row(f"mailsync no-change (same worker, median of {NO_CHANGE_PASSES})", no_change, False)
    job_row("mailsync no-change pass (fresh process)", cold_job, False)
    process_row(f"mbsync no-change (mbsync -a, median of {NO_CHANGE_PASSES})", mb_no_change, False)
    lines.append(
        "CPU s: that process only (Dovecot's and PostgreSQL's CPU not counted); for mailsync "
        "the worker's CPU during the job."
    )
    if worker:
        lines.append(
            f"mailsync worker process: start-up + imports {worker.import_seconds:.2f} s "
            f"(RSS {_mb(worker.rss_after_import):.0f} MB after imports), not counted above; "
            f"whole process {worker.process.wall:.2f} s, peak RSS "
            f"{_mb(worker.process.peak_rss):.0f} MB"
        )
        stored = worker.stored
        lines.append(
            f"mailsync stored {stored.messages:,} messages in {stored.threads:,} threads "
            f"({stored.with_attachments:,} with attachments, {stored.unread:,} unread); "
            f"account {stored.status}; jobs said "
            + "; ".join(", ".join(f"{k} {v}" for k, v in job.result.items()) for job in worker.jobs)
        )
    if mb_initial:
        lines.append(f"mbsync's Maildir holds {report.mb_initial_count:,} messages")
    lines.append("-" * 100)
    lines.append(f"{'ratio':<46}{'value':>8}  {'target':<32}result")

    def ratio(
        name: str, value: float | None, target: str, required: float | None, goal: float | None
    ) -> None:
        nonlocal ok
        if value is None:
            lines.append(f"{name:<46}{'-':>8}  {target:<32}not measured")
            ok = ok and required is None
            return
        verdict = _verdict(value, required, goal)
        ok = ok and not verdict.startswith("MISSED")
        lines.append(f"{name:<46}{value:>8.2f}  {target:<32}{verdict}")

    def div(a: Any, b: Any) -> float | None:
        """a / b for two measurements (a Job, Measured or RawFetch) or None."""
        if a is None or b is None:
            return None
        top = a.seconds if isinstance(a, Job) else a.wall
        return float(top / b.wall) if b.wall else None

    ratio(
        "initial: mailsync / mbsync",
        div(initial, mb_initial),
        "<= 1.0 required, goal <= 0.5",
        INITIAL_VS_MBSYNC_REQUIRED,
        INITIAL_VS_MBSYNC_GOAL,
    )
    ratio(
        "initial: mailsync / raw imaplib", div(initial, raw), "goal <= 8", None, INITIAL_VS_RAW_GOAL
    )
    ratio(
        "no-change: mailsync / mbsync",
        div(no_change, mb_no_change),
        "<= 1.0 required",
        NO_CHANGE_VS_MBSYNC_REQUIRED,
        None,
    )
    ratio(
        "worker peak RSS (MB)",
        _mb(rss) if rss else None,
        f"<= {PEAK_RSS_LIMIT_MB:.0f} required",
        PEAK_RSS_LIMIT_MB,
        None,
    )
    ratio(
        "reference: initial, mailsync / mbsync FSync no", div(initial, mb_nofsync), "-", None, None
    )
    ratio("reference: initial, mbsync / raw imaplib", div(mb_initial, raw), "-", None, None)
    ratio(
        "reference: no-change, fresh process / mbsync", div(cold_job, mb_no_change), "-", None, None
    )
    if whole and whole.steps:
        lines.append("-" * 100)
        lines.extend(breakdown(whole, "initial sync job (and its search vectors)"))
    if no_change and no_change.steps:
        lines.extend(breakdown(no_change, "no-change pass (same worker)"))
    if report.profile:
        lines.append("-" * 100)
        lines.extend(report.profile)
    if report.problems:
        lines.append("-" * 100)
        lines.extend(f"PROBLEM: {problem}" for problem in report.problems)
        ok = False
    lines.append("=" * 100)
    return lines, ok


# -- the run -----------------------------------------------------------------------------


def _check_stored(report: Report, run: WorkerRun, expected: int) -> None:
    stored = run.stored
    if stored.messages != expected or stored.status != "ACTIVE":
        report.problems.append(
            f"mailsync stored {stored.messages} of {expected} messages; the account is "
            f"{stored.status}, last error {stored.last_error!r}"
        )


def _measure(
    report: Report,
    args: argparse.Namespace,
    workdir: Path,
    dovecot: Any,
    settings: Any,
    child_env: dict[str, str],
    database_url: str,
) -> None:
    n = args.messages
    _say(f"building the mailbox: {n:,} messages ({args.load}) ...")
    if args.load == "append":
        report.mailbox = append_messages(dovecot, n, args.seed)
    else:
        home = workdir / "dovecot" / "home" / dovecot.username.lower()
        report.mailbox = write_maildir(home / "Maildir", n, args.seed)
    report.index_seconds = first_select(dovecot, n)

    _say("raw imaplib UID FETCH 1:* ...")
    report.raw = raw_fetch(dovecot)
    if report.raw.count != n:
        report.problems.append(f"imaplib fetched {report.raw.count} messages, not {n}")

    _say(
        f"mailsync: initial sync, then {NO_CHANGE_PASSES} no-change passes, in one worker "
        "process ..."
    )
    account = asyncio.run(_create_account(settings, dovecot, "main"))
    report.worker = run_worker(
        account=account,
        jobs=1 + NO_CHANGE_PASSES,
        env=child_env,
        database_url=database_url,
        workdir=workdir,
        label="mailsync-worker",
    )
    _check_stored(report, report.worker, n)
    first, *passes = report.worker.jobs
    if first.result.get("new") != n:
        report.problems.append(f"mailsync's initial sync reported {first.result}, not new {n}")
    for again in passes:
        if any(again.result.get(k) for k in ("new", "updated", "removed")):
            report.problems.append(f"mailsync's no-change pass changed something: {again.result}")

    _say("mailsync: no-change pass in a fresh process ...")
    report.cold_no_change = run_worker(
        account=account,
        jobs=1,
        env=child_env,
        database_url=database_url,
        workdir=workdir,
        label="mailsync-fresh-no-change",
    )

    _say("mbsync: initial, then no-change ...")
    config = mbsync_config(workdir / "mbsync", dovecot)
    report.mb_initial = run_mbsync(config, workdir, "mbsync-initial")
    report.mb_initial_count = maildir_count(workdir / "mbsync" / "maildir" / "INBOX")
    if report.mb_initial_count != n:
        report.problems.append(f"mbsync pulled {report.mb_initial_count} of {n} messages")
    # mbsync sleeps up to a second when its Maildir changed within the last second (it
    # relies on directory timestamps); a real no-change run comes minutes later.
    time.sleep(MBSYNC_SETTLE_SECONDS)
    report.mb_no_change = _median_by(
        [
            run_mbsync(config, workdir, f"mbsync-no-change-{i}")
            for i in range(1, NO_CHANGE_PASSES + 1)
        ],
        lambda measured: measured.wall,
    )
    _say("mbsync: initial with FSync no (reference) ...")
    report.mb_nofsync = run_mbsync(
        mbsync_config(workdir / "mbsync-nofsync", dovecot, fsync=False),
        workdir,
        "mbsync-nofsync",
    )

    if args.runs:
        headline_runs(report, args, workdir, dovecot, settings, child_env, database_url)

    slower = first.seconds > report.mb_initial.wall
    if args.profile == "always" or (args.profile == "auto" and slower):
        _say("profiling another initial sync of the mailbox (new account, cProfile) ...")
        profiled = asyncio.run(_create_account(settings, dovecot, "profile"))
        stats_file = workdir / "initial.prof"
        run = run_worker(
            account=profiled,
            jobs=1,
            env=child_env,
            database_url=database_url,
            workdir=workdir,
            label="mailsync-profiled",
            profile=stats_file,
        )
        report.profile = summarize_profile(stats_file, run.jobs[0].seconds)
        if args.keep:
            report.profile.append(f"(profile kept: {stats_file})")


def headline_runs(
    report: Report,
    args: argparse.Namespace,
    workdir: Path,
    dovecot: Any,
    settings: Any,
    child_env: dict[str, str],
    database_url: str,
) -> None:
    """``args.runs`` times: the raw fetch, mbsync into a fresh Maildir, then mailsync end
    to end through a `mailsync api` and a `mailsync worker` started once for all runs."""
    from bench import sync_e2e

    n = args.messages
    env = {**child_env, "PYTHONUNBUFFERED": "1"}
    with sync_e2e.services(env, workdir) as (api, worker, url):
        asyncio.run(sync_e2e.wait_started(api, worker, url))
        processes = sync_e2e.Processes(worker.pid, api.pid, dovecot.process.pid, database_url)
        for number in range(1, args.runs + 1):
            _say(f"headline run {number}/{args.runs}: raw fetch, mbsync, mailsync end to end ...")
            raw = raw_fetch(dovecot)
            mbsync_dir = workdir / f"mbsync-run{number}"
            measured = run_mbsync(mbsync_config(mbsync_dir, dovecot), workdir, f"mbsync-{number}")
            if maildir_count(mbsync_dir / "maildir" / "INBOX") != n:
                report.problems.append(f"mbsync (run {number}) did not pull {n} messages")
            e2e = asyncio.run(
                sync_e2e.end_to_end(settings, url, dovecot, processes, f"run{number}")
            )
            if e2e.stored != n:
                report.problems.append(f"mailsync (run {number}) stored {e2e.stored} of {n}")
            report.headline.append(sync_e2e.Run(raw.wall, measured.wall, measured.cpu, e2e))
            _say(
                f"  raw {raw.wall:.2f} s, mbsync {measured.wall:.2f} s, mailsync {e2e.seconds:.2f}"
                f" s (startSync answered in {e2e.mutation:.2f} s), first full page "
                f"{e2e.full_page} s, final first page {e2e.first_page} s; load {os.getloadavg()}"
            )


def run(args: argparse.Namespace) -> int:
    from core.crypto import generate_key
    from core.settings import Settings, load_settings
    from tests.support.mailservers import ImapServerStartError, start_dovecot

    if shutil.which("mbsync") is None:
        raise BenchError("mbsync is missing; install it with `apt-get install isync`")
    report = Report(messages=args.messages)
    report.environment = [
        f"machine: nproc {_nproc()}, {_cpu_model()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"servers: Dovecot {_tool_version(['dovecot', '--version'])}, "
        f"{_tool_version(['mbsync', '--version'])}",
        "load average at start (1/5/15 min): "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
        + " (other work on the machine skews the figures)",
    ]
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="mailsync-bench-"))
        if args.keep:
            _say(f"keeping the work directory {workdir}")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)

        _say("starting PostgreSQL, Redis and Dovecot ...")
        server_url, server_from = stack.enter_context(database_server())
        redis_url, redis_from = stack.enter_context(redis_server())
        database_url = stack.enter_context(fresh_database(server_url, keep=args.keep))
        version = asyncio.run(_sql(database_url, "SHOW server_version"))[0][0]
        report.environment.append(f"PostgreSQL {version} ({server_from}); Redis ({redis_from})")
        try:
            dovecot = start_dovecot(workdir)
        except ImapServerStartError as exc:
            raise BenchError(f"Dovecot did not start: {exc}") from exc
        stack.callback(dovecot.stop)

        secret_keys = generate_key()
        settings_env = {
            "MAILSYNC_DATABASE_URL": database_url,
            "MAILSYNC_REDIS_URL": redis_url,
            "MAILSYNC_SECRET_KEYS": secret_keys,
            "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
            "MAILSYNC_MAIL_PORTS": "any",  # Dovecot listens on a free port
        }
        child_env = {**os.environ, **settings_env}
        settings = load_settings(
            Settings,
            database_url=database_url,
            redis_url=redis_url,
            secret_keys=secret_keys,
            allow_private_hosts=True,
            mail_ports="any",
        )
        try:
            _measure(report, args, workdir, dovecot, settings, child_env, database_url)
        except BenchError as exc:
            report.problems.append(str(exc))
            if dovecot.process.poll() is not None:
                report.problems.append(f"Dovecot exited; its log:\n{dovecot.log_tail()}")
        lines, ok = render(report)
        for line in lines:
            _say(line)
    if report.problems:
        return 1
    return 1 if args.strict and not ok else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync_bench",
        description="Initial and no-change sync of a realistic mailbox: mailsync vs mbsync "
        "vs raw imaplib (prints figures).",
    )
    parser.add_argument("--messages", type=int, default=10_000, help="default 10000")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--load",
        choices=("maildir", "append"),
        default="maildir",
        help="write the Maildir directly (default, fast) or APPEND each message over IMAP",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile another initial sync with cProfile (auto: when slower than mbsync)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="end-to-end headline runs (API + worker processes), 0 for none (default 5)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a required target is missed"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and the database"
    )
    # The child process running one sync (internal).
    parser.add_argument("--child-sync", help=argparse.SUPPRESS)
    parser.add_argument("--child-jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child_sync:
        return child_sync(args.child_sync, args.child_jobs, args.child_result, args.child_profile)
    if args.messages < 1:
        print("error: --messages must be at least 1", file=sys.stderr)
        return 2
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
