"""OAuth2 tokens are secrets like passwords: after a sign-in, a refresh (with rotation), a
sync and a send, no access, refresh or ID token the provider handed out is in any table, in
Redis (job payloads included), in any GraphQL answer or in any log record at DEBUG."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest

from core.models import SendStatus
from tests.sending.helpers import outgoing_row, send
from tests.support.factories import TestUser
from tests.support.oauth import ACCOUNT, COMPLETE, OAuthWorld, query_of
from tests.support.secrets import (
    all_logs_at_debug,
    assert_absent,
    database_dump,
    log_text,
    redis_dump,
    secret_forms,
)
from tests.support.sync import START, burst_worker, stored_state

NewUser = Callable[..., Awaitable[TestUser]]


async def test_no_token_in_the_database_redis_answers_or_logs(
    oauth: OAuthWorld, new_user: NewUser, caplog: pytest.LogCaptureFixture
) -> None:
    user = await new_user()
    client = oauth.client(user.token)
    mailbox = oauth.new_mailbox("vault")
    await mailbox.admin.append(
        "INBOX",
        b"From: a@example.org\r\nSubject: Kept\r\nMessage-ID: <k1@example.org>\r\n\r\nHi\r\n",
    )
    answers: list[str] = []
    with all_logs_at_debug(caplog) as records:
        started = await oauth.start(client, login_hint=mailbox.username)
        back = query_of(await oauth.authorize(started["authorizationUrl"]))
        response = await client.post(
            COMPLETE, {"input": {"state": back["state"], "code": back["code"]}}
        )
        answers.append(response.text)
        account_id = response.json()["data"]["completeOAuthConnection"]["account"]["id"]
        answers.append((await client.post(ACCOUNT, {"id": account_id})).text)
        await client.execute(START, {"input": {"accountId": account_id, "pastSync": "ALL"}})
        queued = await send(client, fromAccountId=account_id, subject="Sealed")
        await oauth.wait_until_refresh_due(account_id)
        await burst_worker(oauth.settings)  # refreshes, syncs and sends
        answers.append((await client.post(ACCOUNT, {"id": account_id})).text)

    assert oauth.provider.refreshes(mailbox.username) == 1
    assert len((await stored_state(oauth.runtime, uuid.UUID(account_id)))["INBOX"]) == 1
    outgoing = await outgoing_row(oauth.runtime, queued["outgoing"]["id"])
    assert outgoing.status is SendStatus.SENT, outgoing.error

    issued = oauth.provider.issued_secrets()
    assert (
        len(issued) >= 4
    )  # access and refresh tokens from the sign-in and the refresh, an ID token
    secrets = [
        form for token in issued for form in secret_forms(token, xoauth2_user=mailbox.username)
    ]
    for answer in answers:
        assert_absent(answer, secrets, "a GraphQL answer")
    assert records, "no log records were captured at all"
    assert_absent(log_text(caplog, records), secrets, "the logs")
    dump = await database_dump(oauth.runtime)
    assert mailbox.username in dump  # the dump does hold the account...
    assert_absent(dump, secrets, "the database")  # ...but not its tokens
    redis = await redis_dump(oauth.runtime)
    assert "arq:" in redis  # the dump does hold the queue's keys...
    assert_absent(redis, secrets, "Redis")  # ...but no token
