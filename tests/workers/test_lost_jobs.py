"""Issue 19, items 4 and 5: sends that Redis or a worker lost.

4. A queued send whose job vanished from Redis (a flush, a restart without persistence) is
   delivered within 30 s when no attempt had started (it used to wait 10 minutes).
5. A worker killed during a send no longer blocks the message for the job timeout: within
   60 s another worker files the Sent copy (once), or settles a message cut off inside DATA
   as possibly delivered (never sent again)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from core.models import SendStatus, SentCopy
from core.runtime import Runtime
from core.sending.delivery import UNCERTAIN
from core.settings import Settings
from tests.sending.helpers import add_sending_account, outgoing_row, send
from tests.support.factories import TestUser
from tests.support.gate_proxy import GateProxy
from tests.support.graphql import GraphQLClient
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.sync import Mailbox, seen_through
from tests.support.worker_process import WorkerProcess, worker_process

pytestmark = pytest.mark.slow

NewUser = Callable[..., Awaitable[TestUser]]


@dataclasses.dataclass
class Sending:
    """A user's client, a mailbox whose account will send through ``smtp``, and what it
    takes to start `mailsync worker` processes."""

    runtime: Runtime
    client: GraphQLClient
    mailbox: Mailbox
    smtp: SmtpServer
    settings: Settings
    workdir: Path

    def worker(self) -> AbstractAsyncContextManager[WorkerProcess]:
        return worker_process(self.settings, self.workdir)

    async def send(self) -> str:
        outgoing_id: str = (await send(self.client))["outgoing"]["id"]
        return outgoing_id

    async def wait_for(
        self, outgoing_id: str, done: Callable[[Any], bool], seconds: float
    ) -> float:
        """Seconds until the outgoing message's row is ``done``."""
        start = time.monotonic()
        while not done(row := await outgoing_row(self.runtime, outgoing_id)):
            if time.monotonic() - start > seconds:
                raise AssertionError(
                    f"not settled within {seconds} s: {row.status} {row.sent_copy} {row.error}"
                )
            await asyncio.sleep(0.05)
        return time.monotonic() - start


@pytest.fixture
async def sending(
    gql: GraphQLClient,
    runtime: Runtime,
    new_user: NewUser,
    mailbox: Mailbox,
    smtp_server: SmtpServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Sending:
    client = gql.as_user((await new_user()).token)
    return Sending(runtime, client, mailbox, smtp_server, make_settings(), tmp_path)


def _sent(row: Any) -> bool:
    return row.status is SendStatus.SENT


async def test_a_send_whose_job_redis_lost_is_delivered_within_30_s(sending: Sending) -> None:
    await add_sending_account(sending.client, sending.mailbox, sending.smtp)
    outgoing_id = await sending.send()
    await sending.runtime.redis.flushdb()  # this test's own Redis database: the job is gone
    async with sending.worker():
        took = await sending.wait_for(outgoing_id, _sent, seconds=30)
    print(f"a send lost by Redis delivered after {took:.1f} s")
    assert len(sending.smtp.received) == 1


async def test_a_worker_killed_before_the_sent_copy_has_it_filed_once_by_the_next(
    sending: Sending,
) -> None:
    box = sending.mailbox
    async with GateProxy(box.server.host, box.server.port) as imap_gate:
        imap_gate.open()
        await add_sending_account(sending.client, seen_through(box, imap_gate), sending.smtp)
        imap_gate.close_gate()  # the Sent-copy APPEND will wait for the IMAP greeting
        outgoing_id = await sending.send()
        async with sending.worker() as doomed:
            await sending.wait_for(outgoing_id, _sent, seconds=30)
            doomed.process.kill()  # SMTP accepted it; the copy is not filed yet
            killed = time.monotonic()
        assert (await outgoing_row(sending.runtime, outgoing_id)).sent_copy is SentCopy.PENDING
        imap_gate.open()
        async with sending.worker() as worker:
            await sending.wait_for(
                outgoing_id, lambda row: row.sent_copy is SentCopy.APPENDED, seconds=60
            )
            took = time.monotonic() - killed
            assert "released a send job abandoned by a dead worker" in worker.output()
    print(f"Sent copy filed {took:.1f} s after the kill")
    assert took < 60
    assert len(await box.admin.fetch_raw("Sent")) == 1
    assert len(sending.smtp.received) == 1


async def test_a_worker_killed_inside_data_leaves_the_message_settled_not_resent(
    sending: Sending,
) -> None:
    smtp = sending.smtp
    async with GateProxy(smtp.host, smtp.port) as smtp_gate:
        smtp_gate.open()
        through_gate = dataclasses.replace(smtp, host=smtp_gate.host, port=smtp_gate.port)
        await add_sending_account(sending.client, sending.mailbox, through_gate)
        outgoing_id = await sending.send()
        smtp_gate.close_after(b"\r\n.\r\n")  # the body arrives; the server's answer never does
        async with sending.worker() as doomed:
            deadline = time.monotonic() + 30
            while smtp.data_commands == 0:
                assert time.monotonic() < deadline, doomed.output()[-3000:]
                await asyncio.sleep(0.02)
            doomed.process.kill()
            killed = time.monotonic()
        smtp_gate.open()
        async with sending.worker():
            await sending.wait_for(
                outgoing_id, lambda row: row.status is not SendStatus.QUEUED, seconds=60
            )
            took = time.monotonic() - killed
    row = await outgoing_row(sending.runtime, outgoing_id)
    print(f"a send killed inside DATA settled {took:.1f} s after the kill")
    assert (row.status, row.error) == (SendStatus.FAILED, UNCERTAIN)
    assert smtp.data_commands == 1  # never offered again
