"""Hostile or broken mail servers (issue 19, items 8-12, and the modes that already held):
one real ``mailsync worker`` process syncs a hostile account (tests/support/hostile_imap.py)
and a healthy Dovecot account at once. Under every mode the worker (its parse processes
included) stays within its 300 MB memory budget and alive, the healthy account's new mail
arrives within the sync interval + 10 s, and the hostile account ends with a clear
``lastError``. Each test prints its figures (peak RSS, time to lastError, healthy delay).

These start a worker process each: marked ``slow`` (``make test SKIP_SLOW=1`` skips them
locally; CI runs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil
import pytest
from sqlalchemy import func, select

from core.models import AccountStatus, Folder, MailAccount, Message
from core.runtime import Runtime
from tests.support.app import RunningApp
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.hostile_imap import HostileImapServer, Mode
from tests.support.mailservers import ImapServer
from tests.support.sync import connect_and_start, private_mailbox, seen_through
from tests.sync.test_crash_safety import WorkerProcess, worker_env
from tests.sync.test_sync_engine import make_message

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NewUser = Callable[..., Awaitable[TestUser]]
RSS_BUDGET = 300 * 1024 * 1024
SYNC_INTERVAL = 3.0
MAIL_TIMEOUT = 6.0
# New mail within the sync interval + 10 s (the scheduler's cron runs every 10 s), plus 3 s
# for the healthy account's own run: the mail is added just after its first run, so it
# waits the interval, up to 10 s for the cron, then the next run (0.3 s on an idle machine,
# 1-3 s on a loaded one). The starvation this catches was 18 s to over 40 s.
HEALTHY_BOUND = SYNC_INTERVAL + 10 + 3


@dataclass
class RssSampler:
    """The worker's resident memory with all its child processes, every 50 ms."""

    pid: int
    peak: int = 0
    samples: list[int] = field(default_factory=list)
    exceeded_after: float | None = None  # seconds from the start when it passed the budget

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            total = root.memory_info().rss
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        except psutil.Error:
            return 0
        self.samples.append(total)
        self.peak = max(self.peak, total)
        return total

    async def run(self, worker: WorkerProcess) -> None:
        started = time.monotonic()
        while True:
            if self.sample() > RSS_BUDGET:
                self.exceeded_after = time.monotonic() - started
                await asyncio.to_thread(worker.kill)  # before it takes the machine down
                return
            await asyncio.sleep(0.05)


@dataclass
class Outcome:
    account_id: uuid.UUID  # the hostile account
    peak_rss_mb: float
    to_last_error: float | None
    healthy_delay: float
    status: AccountStatus
    last_error: str | None
    worker_alive: bool


async def _account(runtime: Runtime, account_id: uuid.UUID) -> MailAccount:
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, account_id)
    assert account is not None
    return account


async def _has_subject(runtime: Runtime, account_id: uuid.UUID, subject: str) -> bool:
    async with runtime.session_factory() as session:
        found = await session.scalar(
            select(Message.id).where(Message.account_id == account_id, Message.subject == subject)
        )
    return found is not None


@contextlib.asynccontextmanager
async def _running_worker(
    running_app: RunningApp, tmp_path: Path, extra_env: dict[str, str]
) -> AsyncIterator[tuple[WorkerProcess, RssSampler]]:
    env = worker_env(running_app.runtime.settings)
    env.update(
        MAILSYNC_SYNC_INTERVAL_SECONDS=str(SYNC_INTERVAL),
        MAILSYNC_MAIL_TIMEOUT_SECONDS=str(MAIL_TIMEOUT),
        MAILSYNC_PARSE_PROCESSES="1",
        TZ="UTC",  # its log lines are read back (the job start times)
        # arq's per-job lines ("→ sync:<id>") are kept at DEBUG only (a no-change sync is
        # silent at INFO): these tests time the job starts from them.
        MAILSYNC_LOG_LEVEL="DEBUG",
    )
    env.update(extra_env)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    sampler = RssSampler(worker.process.pid)
    sampling = asyncio.create_task(sampler.run(worker))
    try:
        yield worker, sampler
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        await asyncio.to_thread(worker.stop)


async def run_against(
    mode: Mode,
    *,
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    running_app: RunningApp,
    dovecot: ImapServer,
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
    server: HostileImapServer | None = None,
    settle: Callable[[MailAccount], bool] | None = None,
) -> Outcome:
    """Both accounts on one worker with the server in ``mode``; the figures."""
    healthy_owner, hostile_owner = await new_user(), await new_user()
    hostile = server or HostileImapServer()
    async with hostile, private_mailbox("dovecot", dovecot, tmp_path) as box:
        healthy_id = await connect_and_start(
            gql.as_user(healthy_owner.token), box, labels=["INBOX"]
        )
        # The hostile server takes any login: the Dovecot user's will do.
        hostile_id = await connect_and_start(
            gql.as_user(hostile_owner.token), seen_through(box, hostile), labels=["INBOX"]
        )
        hostile.mode = mode  # honest while the account was added; hostile from now on
        async with _running_worker(running_app, tmp_path, extra_env or {}) as (worker, rss):
            done = settle or (lambda a: a.last_error is not None)
            seen: list[MailAccount] = []  # the hostile account when it first settled
            settled_at: list[datetime] = []
            watching = asyncio.create_task(
                _wait(
                    "the hostile account's outcome",
                    lambda: _settled(runtime, hostile_id, done, seen, settled_at),
                    within=60,
                    worker=worker,
                    rss=rss,
                )
            )
            try:
                await _wait(
                    "the healthy account's first sync",
                    lambda: _is_active(runtime, healthy_id),
                    within=60,
                    worker=worker,
                    rss=rss,
                )
                subject = f"fresh-{uuid.uuid4().hex[:8]}"
                await box.admin.append_many("INBOX", [(make_message(subject), datetime.now(UTC))])
                appended = time.monotonic()
                await _wait(
                    "the healthy account's new mail",
                    lambda: _has_subject(runtime, healthy_id, subject),
                    within=HEALTHY_BOUND + 30,
                    worker=worker,
                    rss=rss,
                )
                healthy_delay = time.monotonic() - appended
                with contextlib.suppress(AssertionError):
                    await watching
            finally:
                watching.cancel()
            failed = watching.cancelled() or watching.exception() is not None
            to_error = None if failed else _since_first_run(worker, hostile_id, settled_at[0])
            account = seen[0] if seen else await _account(runtime, hostile_id)
            alive = worker.process.poll() is None
            rss.sample()
            outcome = Outcome(
                account_id=hostile_id,
                peak_rss_mb=round(rss.peak / 2**20, 1),
                to_last_error=None if to_error is None else round(to_error, 1),
                healthy_delay=round(healthy_delay, 1),
                status=account.status,
                last_error=account.last_error,
                worker_alive=alive,
            )
            print(f"\n{mode}: {outcome}\nworker log tail:\n{worker.tail(8)}")
    return outcome


async def _is_active(runtime: Runtime, account_id: uuid.UUID) -> bool:
    account = await _account(runtime, account_id)
    return account.status is AccountStatus.ACTIVE and account.last_synced_at is not None


async def _settled(
    runtime: Runtime,
    account_id: uuid.UUID,
    done: Callable[[MailAccount], bool],
    seen: list[MailAccount],
    settled_at: list[datetime],
) -> bool:
    account = await _account(runtime, account_id)
    if done(account):
        seen.append(account)
        settled_at.append(datetime.now(UTC))
        return True
    return False


def _since_first_run(worker: WorkerProcess, account_id: uuid.UUID, settled: datetime) -> float:
    """Seconds from the start of the account's first sync job (arq's "→ sync:<id>" line in
    the worker's log, UTC) to ``settled``: the worker's own start-up is not counted."""
    for line in worker.log.read_text(errors="replace").splitlines():
        if f"→ sync:{account_id}" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
            return (settled - stamp).total_seconds()
    raise AssertionError(f"no sync job of {account_id} in the worker log:\n{worker.tail()}")


async def _wait(
    what: str,
    check: Callable[[], Awaitable[bool]],
    *,
    within: float,
    worker: WorkerProcess,
    rss: RssSampler,
) -> float:
    """Seconds until ``check`` held."""
    start = time.monotonic()
    deadline = start + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within:.0f} s waiting for {what} "
                f"(worker RSS peak {rss.peak / 2**20:.0f} MB)"
            )
        if rss.exceeded_after is not None:
            raise AssertionError(
                f"the worker's RSS passed {RSS_BUDGET // 2**20} MB "
                f"{rss.exceeded_after:.1f} s after it started (killed) waiting for {what}"
            )
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker died waiting for {what}:\n{worker.tail()}")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


class Run(Protocol):
    async def __call__(
        self,
        mode: Mode,
        *,
        server: HostileImapServer | None = None,
        settle: Callable[[MailAccount], bool] | None = None,
    ) -> Outcome: ...


@pytest.fixture
def hostile_run(
    gql: GraphQLClient,
    new_user: NewUser,
    runtime: Runtime,
    running_app: RunningApp,
    dovecot: ImapServer,
    tmp_path: Path,
) -> Run:
    """``run_against`` with this test's fixtures."""

    async def run(
        mode: Mode,
        *,
        server: HostileImapServer | None = None,
        settle: Callable[[MailAccount], bool] | None = None,
    ) -> Outcome:
        return await run_against(
            mode,
            gql=gql,
            new_user=new_user,
            runtime=runtime,
            running_app=running_app,
            dovecot=dovecot,
            tmp_path=tmp_path,
            server=server,
            settle=settle,
        )

    return run


def assert_bounded(outcome: Outcome) -> None:
    assert outcome.worker_alive
    assert outcome.peak_rss_mb * 2**20 <= RSS_BUDGET, outcome
    assert outcome.healthy_delay <= HEALTHY_BOUND, outcome


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("drip", None),  # every byte 1 ms apart: slow, and still right
        ("deep_nesting", None),  # MIME nested 10,000 deep: stored, parsed within limits
        ("garbage_after_login", "mail server"),
    ],
)
async def test_modes_that_held(
    mode: Mode,
    expect: str | None,
    hostile_run: Run,
    runtime: Runtime,
) -> None:
    outcome = await hostile_run(
        mode,
        settle=(
            (lambda a: a.status is AccountStatus.ACTIVE and a.last_synced_at is not None)
            if expect is None
            else (lambda a: a.last_error is not None)
        ),
    )
    assert_bounded(outcome)
    if expect is None:
        assert (outcome.status, outcome.last_error) == (AccountStatus.ACTIVE, None)
        async with runtime.session_factory() as session:
            subjects = list(
                await session.scalars(
                    select(Message.subject).where(Message.account_id == outcome.account_id)
                )
            )
        assert len(subjects) == 1
    else:
        assert outcome.last_error is not None and expect in outcome.last_error


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        # Item 8: a FETCH literal announced as {2000000000} (RFC822.SIZE said 1,000 bytes).
        ("huge_literal", "2,000,000,000 bytes, more than the 16 MB allowed"),
        # Item 9: an untagged line streamed without CRLF, past the 16 MB line cap.
        ("endless_line", "response line longer than 16 MB"),
        # Item 12: a greeting, then silence (CAPABILITY, LOGIN... never answered).
        ("mute_after_greeting", "stopped answering (no reply within 6 s)"),
    ],
)
async def test_a_server_past_a_cap_ends_the_run_with_a_clear_error_in_time(
    mode: Mode, message: str, hostile_run: Run
) -> None:
    outcome = await hostile_run(mode)
    assert_bounded(outcome)
    assert outcome.status is AccountStatus.ERROR
    assert outcome.last_error is not None and message in outcome.last_error, outcome
    assert outcome.to_last_error is not None and outcome.to_last_error <= MAIL_TIMEOUT + 2


async def test_a_flood_of_folders_is_capped_with_a_note(
    hostile_run: Run,
    runtime: Runtime,
) -> None:
    """Item 10: LIST answers 100,000 folders (and INBOX); 1,000 are kept, INBOX synced."""
    outcome = await hostile_run(
        "folder_flood",
        settle=lambda a: a.status is AccountStatus.ACTIVE and a.last_error is not None,
    )
    assert_bounded(outcome)
    assert outcome.status is AccountStatus.ACTIVE
    assert outcome.last_error == (
        "The mail server lists 100,001 folders; only the first 1,000 are synced or shown, "
        "the rest are ignored."
    )
    # The run reads all 100,001 lines (~1.5 s of CPU here) and stores 1,000 folders once:
    # 13 s at the most on this 2-core machine under a load of 10; before, still SYNCING
    # after 60 s.
    assert outcome.to_last_error is not None and outcome.to_last_error <= 25
    async with runtime.session_factory() as session:
        names = list(
            await session.scalars(
                select(Folder.name).where(Folder.account_id == outcome.account_id)
            )
        )
        inbox = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.account_id == outcome.account_id)
        )
    assert len(names) == 1000 and "INBOX" in names
    assert inbox == 1  # the hostile INBOX's one message was synced


@pytest.mark.parametrize(
    ("megabytes", "downloaded"),
    [
        (200, False),  # above the 10 MB maximum: headers only, the body marked not downloaded
        (9, True),  # just below it: downloaded and parsed within the memory budget
    ],
)
async def test_a_huge_message_is_bounded_by_the_maximum_message_size(
    megabytes: int,
    downloaded: bool,
    hostile_run: Run,
    runtime: Runtime,
) -> None:
    """Item 11: one message of 200 MB (RFC822.SIZE true), read size first."""
    outcome = await hostile_run(
        "huge_message",
        server=HostileImapServer(message_bytes=megabytes * 2**20),
        settle=lambda a: a.status is AccountStatus.ACTIVE and a.last_synced_at is not None,
    )
    assert_bounded(outcome)
    assert (outcome.status, outcome.last_error) == (AccountStatus.ACTIVE, None)
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(
                    Message.subject,
                    Message.size,
                    Message.body_downloaded,
                    Message.has_attachments,
                ).where(Message.account_id == outcome.account_id)
            )
        ).all()
    assert len(rows) == 1
    subject, size, body_downloaded, has_attachments = rows[0]
    assert (subject, size, body_downloaded) == (
        "a 200 MB message",
        megabytes * 2**20,
        downloaded,
    )
    assert has_attachments  # from its structure when the body is not downloaded
