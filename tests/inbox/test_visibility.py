"""Who reads what: owner / teammate / other company x PRIVATE / SHARED, on every inbox
query and mutation that takes an id. A message the viewer may not read answers exactly
like one that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import Sharing
from core.runtime import Runtime
from tests.support.accounts import UPDATE_ACCOUNT, NewUser
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient
from tests.support.inbox import INBOX, MARK, MESSAGE, api_id, seed_account, seed_messages

THREAD = "0b5c3bd5-3a34-4a39-8f5e-7f5d6c0c3e21"
# (can read, what marking answers)
RULES: dict[tuple[str, Sharing], tuple[bool, str | None]] = {
    ("owner", Sharing.PRIVATE): (True, None),
    ("owner", Sharing.SHARED): (True, None),
    ("teammate", Sharing.PRIVATE): (False, "NOT_FOUND"),
    ("teammate", Sharing.SHARED): (True, "FORBIDDEN"),
    ("stranger", Sharing.PRIVATE): (False, "NOT_FOUND"),
    ("stranger", Sharing.SHARED): (False, "NOT_FOUND"),
}


async def _people(new_user: NewUser) -> dict[str, TestUser]:
    return {
        "owner": await new_user(company="Acme"),
        "teammate": await new_user(company="Acme"),
        "stranger": await new_user(company="Umbrella"),
    }


def _ids(data: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in data["inbox"]["edges"]]


@pytest.mark.parametrize(("who", "sharing"), list(RULES))
async def test_visibility_matrix(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime, who: str, sharing: Sharing
) -> None:
    people = await _people(new_user)
    account = await seed_account(runtime, people["owner"], sharing=sharing)
    [message_id] = await seed_messages(
        runtime, account, [{"subject": "pipeline review", "thread_id": THREAD}]
    )
    can_read, mark_error = RULES[(who, sharing)]
    client = gql.as_user(people[who].token)
    visible = [api_id(runtime, message_id)] if can_read else []

    assert _ids(await client.execute(INBOX, {})) == visible
    by_account = await client.execute(INBOX, {"filter": {"accountIds": [str(account.id)]}})
    assert _ids(by_account) == visible
    by_thread = await client.execute(INBOX, {"filter": {"threadId": THREAD}})
    assert _ids(by_thread) == visible
    by_search = await client.execute(INBOX, {"filter": {"search": "pipeline"}})
    assert _ids(by_search) == visible

    message = (await client.execute(MESSAGE, {"id": api_id(runtime, message_id)}))["message"]
    if can_read:
        assert message["id"] == api_id(runtime, message_id)
        assert [m["id"] for m in message["thread"]] == [api_id(runtime, message_id)]
    else:
        assert message is None

    marked = (await client.execute(MARK, {"ids": [api_id(runtime, message_id)], "read": True}))[
        "markMessages"
    ]
    if mark_error is None:
        assert marked["userErrors"] == []
        assert marked["messages"] == [
            {"id": api_id(runtime, message_id), "isRead": True, "isFlagged": False}
        ]
    else:
        assert marked["messages"] == []
        assert [(e["code"], e["field"]) for e in marked["userErrors"]] == [(mark_error, "ids[0]")]
        # Nothing changed: the owner still sees it unread.
        owner = gql.as_user(people["owner"].token)
        again = (await owner.execute(MESSAGE, {"id": api_id(runtime, message_id)}))["message"]
        assert again["isRead"] is False


async def test_unknown_and_malformed_ids_answer_like_invisible_ones(
    gql: GraphQLClient, new_user: NewUser
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    for message_id in ("999999999", "0", "-1", "abc", "\uff11\uff12", "9" * 40):
        assert (await client.execute(MESSAGE, {"id": message_id}))["message"] is None
        marked = (await client.execute(MARK, {"ids": [message_id], "read": True}))["markMessages"]
        assert [e["code"] for e in marked["userErrors"]] == ["NOT_FOUND"]


async def test_turning_sharing_off_hides_the_mail_at_once(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    people = await _people(new_user)
    account = await seed_account(runtime, people["owner"], sharing=Sharing.SHARED)
    [message_id] = await seed_messages(runtime, account, [{"subject": "shared for now"}])
    teammate = gql.as_user(people["teammate"].token)
    assert _ids(await teammate.execute(INBOX, {})) == [api_id(runtime, message_id)]

    owner = gql.as_user(people["owner"].token)
    updated = await owner.execute(
        UPDATE_ACCOUNT, {"input": {"accountId": str(account.id), "sharing": "PRIVATE"}}
    )
    assert updated["updateMailAccount"]["userErrors"] == []

    assert _ids(await teammate.execute(INBOX, {})) == []
    assert (await teammate.execute(MESSAGE, {"id": api_id(runtime, message_id)}))["message"] is None
    assert _ids(await owner.execute(INBOX, {})) == [api_id(runtime, message_id)]


async def test_a_thread_shows_only_the_copies_the_viewer_may_read(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    """A conversation spans the owner's accounts; a teammate sees the SHARED part."""
    people = await _people(new_user)
    shared = await seed_account(runtime, people["owner"], sharing=Sharing.SHARED)
    private = await seed_account(runtime, people["owner"], sharing=Sharing.PRIVATE)
    [question] = await seed_messages(
        runtime, shared, [{"subject": "question", "thread_id": THREAD}]
    )
    [answer] = await seed_messages(runtime, private, [{"subject": "answer", "thread_id": THREAD}])

    owner = gql.as_user(people["owner"].token)
    thread = (await owner.execute(MESSAGE, {"id": api_id(runtime, question)}))["message"]["thread"]
    assert [m["id"] for m in thread] == [api_id(runtime, question), api_id(runtime, answer)]

    teammate = gql.as_user(people["teammate"].token)
    thread = (await teammate.execute(MESSAGE, {"id": api_id(runtime, question)}))["message"][
        "thread"
    ]
    assert [m["id"] for m in thread] == [api_id(runtime, question)]

    stranger = gql.as_user(people["stranger"].token)
    assert (await stranger.execute(MESSAGE, {"id": api_id(runtime, question)}))["message"] is None
