"""OAuth2 accounts at work: syncs and sends whose access token must be refreshed first,
two processes needing one at the same moment, a revoked grant, a provider outage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from core.crypto import KeyRing, generate_key
from core.models import AccountStatus, SendStatus
from core.models.enums import OAuthProvider
from core.oauth.tokens import GrantTokens
from core.runtime import open_runtime
from core.sending.delivery import OutgoingDelivery
from core.sync.run import AccountSyncRun
from tests.sending.helpers import outgoing_row, parse, send
from tests.support.accounts import (
    RECONNECT_ACCOUNT,
    REMOVE_ACCOUNT,
    UPDATE_ACCOUNT,
    account_row,
    error_codes,
)
from tests.support.factories import TestUser
from tests.support.oauth import ACCOUNT, OAuthWorld, query_of
from tests.support.sync import EVERY_RUN, START, burst_worker, stored_state

NewUser = Callable[..., Awaitable[TestUser]]


def _mail(subject: str) -> bytes:
    return (
        f"From: Bob <bob@example.org>\r\nTo: someone@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nHello there.\r\n"
    ).encode()


async def _connected_and_started(oauth: OAuthWorld, user: TestUser, name: str = "ann") -> tuple:
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox(name)
    await mailbox.admin.append("INBOX", _mail("Before the refresh"))
    account_id = await oauth.connect(client, mailbox)
    started = await client.execute(START, {"input": {"accountId": account_id, "pastSync": "ALL"}})
    assert started["startSync"]["userErrors"] == []
    return client, mailbox, account_id


async def test_a_sync_that_needs_a_refresh_refreshes_once_and_syncs(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    _, mailbox, account_id = await _connected_and_started(oauth, user)
    old_refresh_token = await oauth.stored_refresh_token(account_id)
    await oauth.wait_until_refresh_due(account_id)

    await burst_worker(oauth.settings)

    row = await account_row(oauth.runtime, account_id)
    assert row is not None and row.status is AccountStatus.ACTIVE, row and row.last_error
    state = await stored_state(oauth.runtime, uuid.UUID(account_id))
    assert len(state["INBOX"]) == 1
    assert oauth.provider.refreshes(mailbox.username) == 1
    # The provider rotated the refresh token; the stored one is the new one.
    new_refresh_token = await oauth.stored_refresh_token(account_id)
    assert new_refresh_token != old_refresh_token
    grant = await oauth.grant(account_id)
    assert grant.refreshed_at is not None
    assert grant.access_token_expires_at is not None
    assert grant.access_token_expires_at > datetime.now(UTC)


async def test_a_send_that_needs_a_refresh_is_delivered_and_filed(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox("sam")
    account_id = await oauth.connect(client, mailbox)
    await oauth.wait_until_refresh_due(account_id)
    subject = f"Quote {uuid.uuid4().hex[:6]}"

    queued = await send(client, fromAccountId=account_id, subject=subject)
    assert queued["userErrors"] == []
    await burst_worker(oauth.settings)

    outgoing = await outgoing_row(oauth.runtime, queued["outgoing"]["id"])
    assert (outgoing.status, outgoing.attempts) == (SendStatus.SENT, 1), outgoing.error
    [received] = [r for r in oauth.smtp.received if parse(r.data)["Subject"] == subject]
    assert received.mail_from == mailbox.username
    logins = [a for a in oauth.smtp.attempts if a.login == mailbox.username]
    assert [(a.mechanism, a.success) for a in logins] == [("XOAUTH2", True)] * 2  # add, send
    # The copy in Sent went over IMAP with the refreshed token too: one refresh in all.
    sent = await mailbox.admin.fetch_raw("Sent")
    assert [parse(raw)["Subject"] for raw in sent] == [subject]
    assert oauth.provider.refreshes(mailbox.username) == 1


async def test_two_processes_needing_a_token_at_once_refresh_once(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    """A sync worker and a sending worker, each with its own engine and connections (as two
    processes), both find the access token due. The provider rotates refresh tokens and
    kills the grant when a used one comes back, so a second refresh would log the account
    out: one refresh must serve both."""
    user = await new_user()
    client, mailbox, account_id = await _connected_and_started(oauth, user)
    queued = await send(client, fromAccountId=account_id, subject="At the same time")
    assert queued["userErrors"] == []
    await oauth.wait_until_refresh_due(account_id)
    oauth.provider.token_delay = 0.5  # a slow token endpoint: the two would overlap

    async with open_runtime(oauth.settings) as sync_side, open_runtime(oauth.settings) as sender:
        synced, delivered, *tokens = await asyncio.gather(
            AccountSyncRun(sync_side, uuid.UUID(account_id), EVERY_RUN).run(),
            OutgoingDelivery(sender, uuid.UUID(queued["outgoing"]["id"])).run(),
            GrantTokens(sync_side, uuid.UUID(account_id), OAuthProvider.GENERIC).current(),
            GrantTokens(sender, uuid.UUID(account_id), OAuthProvider.GENERIC).current(),
        )

    assert synced is not None
    assert len((await stored_state(oauth.runtime, uuid.UUID(account_id)))["INBOX"]) == 1
    assert delivered is None  # nothing to retry
    outgoing = await outgoing_row(oauth.runtime, queued["outgoing"]["id"])
    assert outgoing.status is SendStatus.SENT, outgoing.error
    assert tokens[0] == tokens[1]
    assert oauth.provider.refreshes(mailbox.username) == 1
    assert oauth.provider.live_grants(mailbox.username) == 1  # not killed by a reuse


async def test_no_database_connection_is_held_while_the_provider_answers(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    """The refresh claims the grant's row (core/claims.py) rather than holding an advisory
    lock on a connection of its own while the token endpoint takes its time: a slow
    provider must not pin pooled connections."""
    user = await new_user()
    _client, mailbox, account_id = await _connected_and_started(oauth, user)
    await oauth.wait_until_refresh_due(account_id)
    oauth.provider.token_delay = 1.0
    async with open_runtime(oauth.settings) as refresher:
        pool = refresher.engine.sync_engine.pool
        refresh = asyncio.create_task(
            GrantTokens(refresher, uuid.UUID(account_id), OAuthProvider.GENERIC).current()
        )
        while_waiting: list[int] = []
        while not refresh.done():
            if oauth.provider.token_requests_waiting:
                while_waiting.append(pool.checkedout())  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        token = await refresh
    assert token
    assert len(while_waiting) >= 5, while_waiting  # sampled inside the provider's second
    assert set(while_waiting) == {0}, while_waiting
    assert oauth.provider.refreshes(mailbox.username) == 1


async def test_a_revoked_grant_fails_the_sync_until_the_user_signs_in_again(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    client, mailbox, account_id = await _connected_and_started(oauth, user)
    await burst_worker(oauth.settings)
    assert (await account_row(oauth.runtime, account_id)).status is AccountStatus.ACTIVE

    oauth.provider.revoke_user(mailbox.username)  # the user removes the app's access
    await mailbox.admin.append("INBOX", _mail("After the revocation"))
    sync_run = AccountSyncRun(oauth.runtime, uuid.UUID(account_id), EVERY_RUN)
    assert await sync_run.run() is None
    account = (await client.execute(ACCOUNT, {"id": account_id}))["mailAccount"]
    assert account["status"] == "AUTH_FAILED"
    assert "Test SSO no longer accepts this account's sign-in" in account["lastError"]
    assert "reconnect the account by signing in again" in account["lastError"]
    row = await account_row(oauth.runtime, account_id)
    assert row is not None and row.next_sync_at is None  # left alone until reconnected
    assert await sync_run.run() is None  # AUTH_FAILED accounts are not synced

    # A password reconnect makes no sense for it.
    refused = await client.execute(
        RECONNECT_ACCOUNT, {"input": {"accountId": account_id, "imapPassword": "x"}}
    )
    assert error_codes(refused["reconnectMailAccount"]) == ["INVALID_INPUT"]

    # Signing in as someone else does not reconnect it.
    other = oauth.new_mailbox("eve")
    started = await oauth.start(client, account_id=account_id)
    assert query_of(started["authorizationUrl"])["login_hint"] == mailbox.username
    url = urlsplit(started["authorizationUrl"])
    params = {**query_of(started["authorizationUrl"]), "login_hint": other.username}
    wrong = url._replace(query=urlencode(params)).geturl()
    assert await oauth.callback(await oauth.authorize(wrong)) == {"error": "ACCOUNT_MISMATCH"}

    started = await oauth.start(client, account_id=account_id)
    result = await oauth.callback(await oauth.authorize(started["authorizationUrl"]))
    assert result == {"accountId": account_id}
    account = (await client.execute(ACCOUNT, {"id": account_id}))["mailAccount"]
    assert (account["status"], account["lastError"]) == ("ACTIVE", None)
    await burst_worker(oauth.settings)  # the reconnect queued a sync
    state = await stored_state(oauth.runtime, uuid.UUID(account_id))
    assert len(state["INBOX"]) == 2
    assert (await account_row(oauth.runtime, account_id)).status is AccountStatus.ACTIVE


async def test_a_provider_outage_backs_off_like_a_connection_error(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    _, mailbox, account_id = await _connected_and_started(oauth, user)
    await oauth.wait_until_refresh_due(account_id)
    oauth.provider.fail_token_endpoint = True

    sync_run = AccountSyncRun(oauth.runtime, uuid.UUID(account_id), EVERY_RUN)
    assert await sync_run.run() is None
    row = await account_row(oauth.runtime, account_id)
    assert row is not None and row.status is AccountStatus.ERROR
    assert row.last_error == "Could not reach Test SSO's sign-in service; retrying later."
    assert row.next_sync_at is not None and row.next_sync_at > datetime.now(UTC)

    oauth.provider.fail_token_endpoint = False
    result = await sync_run.run()
    assert result is not None and result.counts.new == 1
    assert oauth.provider.refreshes(mailbox.username) == 1


async def test_starting_a_reconnect_needs_an_own_account_of_that_provider(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    ann, bob = await new_user(), await new_user()
    account_id = await oauth.connect(oauth.client(ann.token), oauth.new_mailbox())
    foreign = await oauth.start(oauth.client(bob.token), account_id=account_id)
    assert error_codes(foreign) == ["NOT_FOUND"]
    unknown = await oauth.start(oauth.client(ann.token), account_id=str(uuid.uuid4()))
    assert error_codes(unknown) == ["NOT_FOUND"]


async def test_removing_an_account_revokes_its_grant_at_the_provider(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox("bye")
    account_id = await oauth.connect(client, mailbox)
    assert oauth.provider.live_grants(mailbox.username) == 1

    removed = await client.execute(REMOVE_ACCOUNT, {"id": account_id})
    assert removed["removeMailAccount"]["removedAccountId"] == account_id
    assert oauth.provider.live_grants(mailbox.username) == 0
    assert await account_row(oauth.runtime, account_id) is None


async def test_a_token_refused_before_its_time_is_refreshed_and_tried_again(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    """The provider ended the access token early (the grant lives on): the IMAP server
    refuses it, the sync refreshes once and logs in with the new one; so does a send."""
    user = await new_user()
    oauth.provider.access_token_seconds = 600  # nothing is due by the clock (reset after)
    client, mailbox, account_id = await _connected_and_started(oauth, user)
    await burst_worker(oauth.settings)  # the first sync, with the sign-in's token
    refreshes = oauth.provider.refreshes(mailbox.username)
    oauth.provider.expire_access_tokens(mailbox.username)
    await mailbox.admin.append("INBOX", _mail("After the early expiry"))

    result = await AccountSyncRun(oauth.runtime, uuid.UUID(account_id), EVERY_RUN).run()
    assert result is not None and result.counts.new == 1
    assert oauth.provider.refreshes(mailbox.username) == refreshes + 1
    assert (await account_row(oauth.runtime, account_id)).status is AccountStatus.ACTIVE

    # The same at the SMTP server: refused, refreshed, sent.
    oauth.provider.expire_access_tokens(mailbox.username)
    queued = await send(client, fromAccountId=account_id, subject="Early expiry")
    await burst_worker(oauth.settings)
    outgoing = await outgoing_row(oauth.runtime, queued["outgoing"]["id"])
    assert (outgoing.status, outgoing.attempts) == (SendStatus.SENT, 1), outgoing.error
    logins = [a for a in oauth.smtp.attempts if a.login == mailbox.username]
    assert [a.success for a in logins][-2:] == [False, True]  # on one connection
    assert oauth.provider.refreshes(mailbox.username) == refreshes + 2


async def test_a_refresh_reseals_both_tokens_with_the_newest_key(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    """Key rotation: after a new key is put first, the next refresh stores both tokens
    under it, also a refresh token the provider did not rotate (as Google does)."""
    oauth.provider.rotate_refresh_tokens = False
    user = await new_user()
    mailbox = oauth.new_mailbox("keys")
    account_id = await oauth.connect(oauth.client(user.token), mailbox)
    refresh_token = await oauth.stored_refresh_token(account_id)
    new_key = generate_key()
    rotated = oauth.settings.model_copy(
        update={"secret_keys": (new_key, *oauth.settings.secret_keys)}
    )
    await oauth.wait_until_refresh_due(account_id)

    async with open_runtime(rotated) as runtime:
        token = await GrantTokens(runtime, uuid.UUID(account_id), OAuthProvider.GENERIC).current()

    assert oauth.provider.refreshes(mailbox.username) == 1
    grant = await oauth.grant(account_id)
    only_new = KeyRing.from_settings((new_key,))
    aad = f"mail_account:{account_id}:"
    assert grant.access_token_encrypted is not None
    assert only_new.decrypt(grant.access_token_encrypted, aad + "oauth_access") == token
    assert only_new.decrypt(grant.refresh_token_encrypted, aad + "oauth_refresh") == refresh_token


async def test_an_oauth_account_keeps_its_providers_servers(
    oauth: OAuthWorld, new_user: NewUser
) -> None:
    user = await new_user()
    client = oauth.client(user.token)
    account_id = await oauth.connect(client, oauth.new_mailbox())
    before = await account_row(oauth.runtime, account_id)
    server = {"host": "imap.elsewhere.example.com", "password": "pw"}
    for field in ("imap", "smtp"):
        changed = await client.execute(
            UPDATE_ACCOUNT, {"input": {"accountId": account_id, field: server}}
        )
        [error] = changed["updateMailAccount"]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", field)
    after = await account_row(oauth.runtime, account_id)
    assert before is not None and after is not None
    assert (after.imap_host, after.smtp_host) == (before.imap_host, before.smtp_host)
