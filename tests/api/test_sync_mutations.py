"""startSync, syncNow, pauseSync, resumeSync and updateMailAccount(labels)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.jobs import sync_job_id
from core.models import AccountStatus, Folder, MailAccount, Message
from core.runtime import Runtime
from core.sync.run import AccountSyncRun
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.sync import (
    EVERY_RUN,
    connect_and_start,
    private_mailbox,
    stored_state,
    sync_once,
)
from tests.sync.test_sync_engine import make_message

NewUser = Callable[..., Awaitable[TestUser]]

START = """
mutation($input: StartSyncInput!) {
  startSync(input: $input) {
    account { id status sharing labels pastSync folders { name selected } }
    userErrors { code field message }
  }
}"""
ACCOUNT_OP = """
mutation($id: ID!) {
  %s(accountId: $id) { account { id status } userErrors { code field } }
}"""
UPDATE_LABELS = """
mutation($id: ID!, $labels: [String!]) {
  updateMailAccount(input: {accountId: $id, labels: $labels}) {
    account { labels folders { name selected messageCount } } userErrors { code field }
  }
}"""


async def _added(client: GraphQLClient, pymap: ImapServer) -> str:
    data = await client.execute(ADD_ACCOUNT, {"input": account_input(pymap)})
    account_id: str = data["addMailAccount"]["account"]["id"]
    return account_id


async def _op(client: GraphQLClient, name: str, account_id: str) -> dict[str, Any]:
    data = await client.execute(ACCOUNT_OP % name, {"id": account_id})
    result: dict[str, Any] = data[name]
    return result


async def test_start_sync_defaults_to_inbox_and_sent_and_queues_the_job(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _added(client, pymap)
    data = await client.execute(START, {"input": {"accountId": account_id, "sharing": "SHARED"}})
    payload = data["startSync"]
    assert payload["userErrors"] == []
    account = payload["account"]
    assert account["status"] == "SYNCING"
    assert account["sharing"] == "SHARED"
    assert account["pastSync"] == "ONE_MONTH"
    assert sorted(account["labels"]) == ["INBOX", "Sent"]
    selected = {f["name"] for f in account["folders"] if f["selected"]}
    assert selected == {"INBOX", "Sent"}
    assert await runtime.redis.exists(f"arq:job:{sync_job_id(uuid.UUID(account_id))}")

    again = await client.execute(START, {"input": {"accountId": account_id}})
    assert [e["code"] for e in again["startSync"]["userErrors"]] == ["ACCOUNT_NOT_READY"]


async def test_unknown_label_changes_nothing(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _added(client, pymap)
    data = await client.execute(
        START, {"input": {"accountId": account_id, "labels": ["inbox", "Nope"]}}
    )
    assert data["startSync"]["userErrors"] == [
        {
            "code": "UNKNOWN_LABEL",
            "field": "labels",
            "message": "The server has no folder named 'Nope'.",
        }
    ]
    async with runtime.session_factory() as session:
        account = await session.get(MailAccount, uuid.UUID(account_id))
        selected = list(await session.scalars(select(Folder).where(Folder.selected.is_(True))))
    assert account is not None and account.status is AccountStatus.READY
    assert selected == []
    assert not await runtime.redis.exists(f"arq:job:{sync_job_id(uuid.UUID(account_id))}")


async def test_other_users_cannot_start_pause_or_resume(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer
) -> None:
    owner = await new_user(company="Owner Co")
    stranger = await new_user(company="Other Co")
    account_id = await _added(gql.as_user(owner.token), pymap)
    other = gql.as_user(stranger.token)
    data = await other.execute(START, {"input": {"accountId": account_id}})
    assert [e["code"] for e in data["startSync"]["userErrors"]] == ["NOT_FOUND"]
    for name in ("syncNow", "pauseSync", "resumeSync"):
        result = await _op(other, name, account_id)
        assert [e["code"] for e in result["userErrors"]] == ["NOT_FOUND"], name


async def test_pause_resume_and_sync_now_follow_the_account_state(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    account_id = await _added(client, pymap)
    not_started = await _op(client, "syncNow", account_id)
    assert [e["code"] for e in not_started["userErrors"]] == ["ACCOUNT_NOT_READY"]
    await client.execute(START, {"input": {"accountId": account_id, "pastSync": "ALL"}})
    await runtime.redis.flushdb()

    paused = await _op(client, "pauseSync", account_id)
    assert paused["account"]["status"] == "PAUSED"
    assert [e["code"] for e in (await _op(client, "syncNow", account_id))["userErrors"]] == [
        "ACCOUNT_NOT_READY"
    ]
    assert await sync_once_skipped(runtime, account_id)

    resumed = await _op(client, "resumeSync", account_id)
    assert resumed["account"]["status"] == "ACTIVE"
    assert await runtime.redis.exists(f"arq:job:{sync_job_id(uuid.UUID(account_id))}")
    await runtime.redis.flushdb()
    now = await _op(client, "syncNow", account_id)
    assert now["userErrors"] == []
    assert await runtime.redis.exists(f"arq:job:{sync_job_id(uuid.UUID(account_id))}")


async def sync_once_skipped(runtime: Runtime, account_id: str) -> bool:
    """A paused account's queued job does nothing."""
    return await AccountSyncRun(runtime, uuid.UUID(account_id), EVERY_RUN).run() is None


async def test_changing_labels_backfills_new_folders_and_drops_removed_ones(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, dovecot: ImapServer, tmp_path: Path
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    async with private_mailbox("dovecot", dovecot, tmp_path) as box:
        now = datetime.now(UTC)
        await box.admin.append_many("INBOX", [(make_message("in-1"), now)])
        await box.admin.append_many("Archive", [(make_message(f"arc-{i}"), now) for i in range(2)])
        account_id = await connect_and_start(client, box, labels=["INBOX"])
        await sync_once(runtime, account_id)

        data = await client.execute(UPDATE_LABELS, {"id": str(account_id), "labels": ["Archive"]})
        assert data["updateMailAccount"]["userErrors"] == []
        assert data["updateMailAccount"]["account"]["labels"] == ["Archive"]
        async with runtime.session_factory() as session:  # INBOX's mail left at once
            subjects = list(await session.scalars(select(Message.subject)))
        assert subjects == []

        result = await sync_once(runtime, account_id)
        assert result.counts.new == 2
        state = await stored_state(runtime, account_id)
        assert set(state) == {"Archive"} and len(state["Archive"]) == 2

        bad = await client.execute(UPDATE_LABELS, {"id": str(account_id), "labels": ["Nope"]})
        assert [e["code"] for e in bad["updateMailAccount"]["userErrors"]] == ["UNKNOWN_LABEL"]
