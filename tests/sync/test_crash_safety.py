"""Crash safety: a worker process killed with SIGKILL in the middle of a large first sync,
again and again, never leaves a duplicate or a gap once a later run finishes.

The workers are real ``mailsync worker`` processes (``python -m cli.main worker``) on the
test database and Redis; the sync job is the one ``startSync`` enqueued.

What arq (0.28) does with a job whose worker died: the job stays in the queue, its job key
stays (so ``enqueue_sync`` is a no-op: the job id is taken) and its in-progress marker lives
for the job's ``timeout`` + 10 s, that is 3610 s for ``sync_account``: until then no other
worker starts it and the scheduler's re-enqueue is a no-op too. When the marker expires a
worker starts it again as the next try; after ``max_tries`` (3) starts arq drops it ("max
retries exceeded") and the scheduler's cron (or any ``enqueue_sync``) queues a fresh one.
The kill loop below deletes the marker after each kill, as its expiry would an hour later;
``test_a_killed_sync_resumes_without_waiting_for_arqs_marker`` asks for better.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from core.jobs import sync_job_id
from core.models import AccountStatus, Folder, MailAccount, Message
from core.runtime import Runtime
from core.settings import Settings
from core.sync.claims import claimed_among
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.mail_corpus import corpus
from tests.support.mailservers import ImapServer
from tests.support.sync import Mailbox, connect_and_start, private_mailbox, stored_state
from workers.leases import lease_key
from workers.sync_job import schedule_due_syncs

ROOT = Path(__file__).resolve().parents[2]
SEED = 2026
TOTAL = 1500  # messages in INBOX for the first sync (about 12 MB)
KILLS = 5
IN_PROGRESS = "arq:in-progress:"
JOB = "arq:job:"
RETRY = "arq:retry:"


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update(
        MAILSYNC_DATABASE_URL=settings.database_url,
        MAILSYNC_REDIS_URL=settings.redis_url,
        MAILSYNC_SECRET_KEYS=",".join(settings.secret_keys),
        MAILSYNC_ALLOW_PRIVATE_HOSTS="true",
        MAILSYNC_MAIL_PORTS="any",  # the test servers listen on free ports
        MAILSYNC_MAIL_TIMEOUT_SECONDS="10",
        MAILSYNC_FLAG_SCAN_INTERVAL_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    if settings.tls_ca_file:
        env["MAILSYNC_TLS_CA_FILE"] = settings.tls_ca_file
    return env


class WorkerProcess:
    """One ``mailsync worker`` in a process group of its own (its parse processes join it);
    its output goes to a log file kept for failure messages."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.orphans_seen = False

    def kill(self) -> None:
        """SIGKILL the worker itself, then whatever it left in its group: a killed worker's
        parse processes outlive it (they were seen doing so), and a test leaves nothing."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._kill_group()

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        self.orphans_seen = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """A graceful stop (arq handles SIGTERM), else SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@asynccontextmanager
async def worker(env: dict[str, str], log: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(env, log)
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)


async def stored_count(runtime: Runtime, account_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.account_id == account_id)
        )
    return int(count or 0)


async def wait_until(
    what: str,
    check: Callable[[], Awaitable[bool]],
    *,
    within: float,
    interval: float = 0.02,
    log: WorkerProcess | None = None,
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            tail = f"\nworker log:\n{log.tail()}" if log else ""
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{tail}")
        await asyncio.sleep(interval)


async def assert_mirrors_server(runtime: Runtime, account_id: uuid.UUID, box: Mailbox) -> None:
    """Exactly the server's messages: none missing, none twice, flags and counts right."""
    flags = await box.admin.flags("INBOX")
    expected = {
        uid: ("\\Seen" in f, "\\Flagged" in f, "\\Answered" in f) for uid, f in flags.items()
    }
    stored = await stored_state(runtime, account_id)
    assert set(stored) == {"INBOX"}
    missing = sorted(set(expected) - set(stored["INBOX"]))
    extra = sorted(set(stored["INBOX"]) - set(expected))
    assert (missing, extra) == ([], []), f"missing {missing[:20]}, extra {extra[:20]}"
    assert stored["INBOX"] == expected
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Message.folder_id, Message.uid, Message.message_id).where(
                Message.account_id == account_id
            )
        )
        keys = [(folder, uid) for folder, uid, _mid in rows.all()]
        rows = await session.execute(
            select(Message.message_id, func.count())
            .where(Message.account_id == account_id)
            .group_by(Message.folder_id, Message.message_id)
            .having(func.count() > 1)
        )
        duplicates = rows.all()
        folder = await session.scalar(
            select(Folder).where(Folder.account_id == account_id, Folder.name == "INBOX")
        )
        account = await session.get(MailAccount, account_id)
    assert len(keys) == len(set(keys)) == len(expected)
    assert duplicates == []
    assert folder is not None and account is not None
    unread = sum(1 for read, _f, _a in expected.values() if not read)
    assert (folder.message_count, folder.unread_count) == (len(expected), unread)
    assert account.status is AccountStatus.ACTIVE and not account.initial_sync_pending
    # The stored Message-IDs are exactly the server's.
    server_ids = sorted(_message_ids(await box.admin.fetch_raw("INBOX")))
    async with runtime.session_factory() as session:
        stored_ids = sorted(
            await session.scalars(
                select(Message.message_id).where(Message.account_id == account_id)
            )
        )
    assert stored_ids == server_ids


def _message_ids(raws: list[bytes]) -> list[str]:
    ids = []
    for raw in raws:
        header = raw.split(b"\r\n\r\n", 1)[0]
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                ids.append(line.split(b":", 1)[1].strip().strip(b"<>").decode())
    return ids


async def fill_inbox(box: Mailbox, rng: random.Random, mail: list[bytes]) -> None:
    now = datetime.now(UTC)
    await box.admin.append_many(
        "INBOX", [(raw, now - timedelta(days=700 * rng.random())) for raw in mail]
    )


async def change_server(box: Mailbox, rng: random.Random, fresh: list[bytes]) -> str:
    """New mail, deletions and flag changes while the sync is down between two workers."""
    uids = await box.admin.uids("INBOX")
    added = [fresh.pop() for _ in range(min(len(fresh), rng.randint(0, 30)))]
    if added:
        await box.admin.append_many("INBOX", [(raw, datetime.now(UTC)) for raw in added])
    doomed = rng.sample(uids, rng.randint(0, 5))
    for uid in doomed:
        await box.admin.expunge("INBOX", uid)
    flagged = rng.sample([u for u in uids if u not in doomed], rng.randint(0, 5))
    for uid in flagged:
        await box.admin.store("INBOX", uid, "+FLAGS", "\\Seen \\Flagged")
    return f"+{len(added)} new, -{len(doomed)} deleted, {len(flagged)} flagged"


NewUser = Callable[..., Awaitable[TestUser]]


async def test_sigkilled_workers_leave_no_duplicate_and_no_gap(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    running_app: RunningApp,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    redis = runtime.redis
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        mail = corpus(TOTAL + 200, SEED)
        await fill_inbox(box, rng, mail[:TOTAL])
        fresh = mail[TOTAL:]
        user = await new_user()
        account_id = await connect_and_start(
            gql.as_user(user.token), box, labels=["INBOX"], past_sync="ALL"
        )
        job_id = sync_job_id(account_id)
        env = worker_env(running_app.runtime.settings)
        log = tmp_path / "workers.log"
        history: list[str] = []

        for kill in range(1, KILLS + 1):
            total = len(await box.admin.uids("INBOX"))
            async with worker(env, log) as process:
                before = await stored_count(runtime, account_id)

                async def requeue_if_dropped() -> None:
                    # After max_tries starts arq drops the job; queue it again, as the
                    # scheduler's cron would within 10 s.
                    if not await redis.exists(JOB + job_id):
                        await runtime.jobs.enqueue_sync(account_id)

                # A random point of the remaining work, leaving enough for the next kills.
                left = total - before
                target = before + rng.randint(1, max(1, left // (KILLS - kill + 2)))

                async def reached(target: int = target) -> bool:
                    await requeue_if_dropped()
                    return await stored_count(runtime, account_id) >= target

                await wait_until(f"{target} rows (kill {kill})", reached, within=60, log=process)
                # Anywhere in a chunk's work: a 100-message chunk takes ~40 ms here.
                await asyncio.sleep(rng.uniform(0, 0.04))
                process.kill()
            after = await stored_count(runtime, account_id)
            assert 0 < after < total, f"kill {kill} came too late: {after} of {total} stored"
            tries = await redis.get(RETRY + job_id)
            ttl = await redis.pttl(IN_PROGRESS + job_id)
            requeued = await runtime.jobs.enqueue_sync(account_id)
            changes = await change_server(box, rng, fresh)
            history.append(
                f"kill {kill}: {before} -> {after} of {total} rows; arq try {tries!r},"
                f" in-progress marker ttl {ttl} ms, re-enqueue accepted: {requeued};"
                f" processes left behind: {process.orphans_seen}; {changes}"
            )
            await redis.delete(IN_PROGRESS + job_id)  # what its expiry would do

        async with worker(env, log) as process:

            async def finished() -> bool:
                async with runtime.session_factory() as session:
                    status = await session.scalar(
                        select(MailAccount.status).where(MailAccount.id == account_id)
                    )
                if status is AccountStatus.ACTIVE:
                    return True
                if not await redis.exists(JOB + job_id):  # dropped after max_tries
                    await runtime.jobs.enqueue_sync(account_id)
                return False

            await wait_until("the final run", finished, within=90, interval=0.1, log=process)
        print("\n".join(history))
        assert await redis.exists(IN_PROGRESS + job_id) == 0
        await assert_mirrors_server(runtime, account_id, box)


async def test_a_killed_sync_resumes_without_waiting_for_arqs_marker(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    running_app: RunningApp,
    dovecot: ImapServer,
    tmp_path: Path,
) -> None:
    """A worker dies (OOM, a deploy's SIGKILL) in the middle of an account's sync and a new
    worker starts: the account's sync must go on after the scheduler's next pass, not stay
    blocked by the dead job's in-progress marker for the job timeout (an hour).

    Each step waits for the event it needs (the dead worker's lock released, one scheduler
    pass, the next worker's first rows), never for a clock: the bounds are only there to
    fail a run that hangs."""
    rng = random.Random(SEED + 1)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        await fill_inbox(box, rng, corpus(400, SEED + 1))
        user = await new_user()
        account_id = await connect_and_start(
            gql.as_user(user.token), box, labels=["INBOX"], past_sync="ALL"
        )
        job_id = sync_job_id(account_id)
        env = worker_env(running_app.runtime.settings)
        log = tmp_path / "workers.log"
        async with worker(env, log) as process:

            async def started() -> bool:
                return await stored_count(runtime, account_id) > 0

            await wait_until("the first rows", started, within=120, log=process)
            process.kill()
        stalled_at = await stored_count(runtime, account_id)
        assert stalled_at < 400
        assert await redis_exists(runtime, IN_PROGRESS + job_id), "the dead job left no marker"

        async def claim_expired() -> bool:  # the dead worker renews it no more
            async with runtime.session_factory() as session:
                return not await claimed_among(session, [account_id])

        await wait_until("the dead worker's sync claim to run out", claim_expired, within=60)

        async def lease_expired() -> bool:  # the dead worker renews it no more
            return not await redis_exists(runtime, lease_key(job_id))

        await wait_until("the dead worker's job lease to expire", lease_expired, within=60)
        # One pass of the scheduler (the worker's cron runs it every 10 s) frees the job.
        await schedule_due_syncs({"runtime": runtime})
        assert not await redis_exists(runtime, IN_PROGRESS + job_id)
        assert await redis_exists(runtime, JOB + job_id), "the job itself must stay queued"

        async with worker(env, log) as process:

            async def resumed() -> bool:
                return await stored_count(runtime, account_id) > stalled_at

            await wait_until("the sync to resume", resumed, within=120, interval=0.2, log=process)


async def redis_exists(runtime: Runtime, key: str) -> bool:
    return bool(await runtime.redis.exists(key))
