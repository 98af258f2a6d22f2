"""The IMAP commands under the engine, against the real servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.mail.imap import imap_session
from core.mail.mailbox import MailboxOps, parse_uid_ranges, uid_set
from core.mail.server import MailConnectOptions, ServerLogin
from core.models import ConnectionSecurity
from tests.support.mailservers import ImapServer
from tests.support.pymap_launcher import TEST_ROUNDS, hold_connection_tasks, use_cheap_hash
from tests.support.sync import private_mailbox
from tests.sync.test_sync_engine import make_message

OPTIONS = MailConnectOptions(allow_private_hosts=True, timeout=5, tls_ca_file=None)


def test_uid_sets_and_ranges_round_trip() -> None:
    assert uid_set([5, 1, 2, 3, 9, 10, 7]) == "1:3,5,7,9:10"
    assert parse_uid_ranges(b"1:3,5,9:7") == [(1, 3), (5, 5), (7, 9)]


async def test_dovecot_offers_qresync_and_reports_changes_since_a_modseq(
    dovecot: ImapServer, tmp_path: Path
) -> None:
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        for i in range(4):
            await box.admin.append("INBOX", make_message(f"q{i}"))
        login = ServerLogin(
            box.server.host, box.server.port, ConnectionSecurity.NONE, box.username, box.password
        )
        async with imap_session(login, OPTIONS) as connection:
            ops = MailboxOps(connection)
            await ops.enable_extensions()
            assert ops.qresync and ops.condstore
            before = await ops.select("INBOX")
            assert before.highestmodseq is not None
        await box.admin.store("INBOX", 2, "+FLAGS", "\\Flagged")
        await box.admin.expunge("INBOX", 3)
        async with imap_session(login, OPTIONS) as connection:
            ops = MailboxOps(connection)
            await ops.enable_extensions()
            quick = await ops.select_since("INBOX", before.uidvalidity, before.highestmodseq)
    assert quick.vanished == [(3, 3)]
    assert [(i.uid, "\\Flagged" in i.flags) for i in quick.changed] == [(2, True)]
    assert quick.state.exists == 3


async def test_pymap_offers_neither_and_the_fallback_commands_work(pymap: ImapServer) -> None:
    login = ServerLogin(
        pymap.host, pymap.port, ConnectionSecurity.NONE, pymap.username, pymap.password
    )
    async with imap_session(login, OPTIONS) as connection:
        ops = MailboxOps(connection)
        await ops.enable_extensions()
        assert not ops.qresync and not ops.condstore
        state = await ops.select("INBOX")
        uids = await ops.uid_search("ALL")
        flags = await ops.fetch_flags(uid_set(uids))
        messages = await ops.fetch_messages(uid_set(uids[:2]))
    assert state.exists == len(uids) == len(flags) > 0
    assert state.highestmodseq is None
    assert [m.uid for m in messages] == uids[:2]
    assert all(m.raw and m.size > 0 for m in messages)


async def test_eight_parallel_logins_to_the_test_pymap_finish_within_the_mail_timeout(
    pymap: ImapServer,
) -> None:
    """Both workarounds of tests/support/pymap_launcher.py: on Python 3.13 pymap 0.36 let
    a connection's task be garbage-collected before it read the first command, and pysasl's
    500,000-round password hash queued parallel logins past the 5 s mail timeout; either
    made addMailAccount answer SERVER_UNREACHABLE."""
    login = ServerLogin(
        pymap.host, pymap.port, ConnectionSecurity.NONE, pymap.username, pymap.password
    )
    options = MailConnectOptions(allow_private_hosts=True, timeout=5.0, tls_ca_file=None)

    async def folders() -> int:
        async with imap_session(login, options) as connection:
            return len(await connection.list_mailboxes())

    assert all(await asyncio.gather(*(folders() for _ in range(8))))
    assert "Task was destroyed but it is pending" not in pymap.log_tail(200)


def test_the_pymap_launcher_still_fits_pymap_and_pysasl() -> None:
    from pymap.imap import IMAPServer
    from pysasl.hashing import BuiltinHash

    defaults, serve = dict(BuiltinHash.__init__.__kwdefaults__ or {}), IMAPServer.__call__
    try:
        use_cheap_hash()
        hold_connection_tasks()
        assert BuiltinHash().rounds == TEST_ROUNDS
        assert IMAPServer.__call__ is not serve
    finally:
        BuiltinHash.__init__.__kwdefaults__ = defaults
        IMAPServer.__call__ = serve  # type: ignore[method-assign]
