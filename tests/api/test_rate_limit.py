"""At most 10 credential checks per user per minute (addMailAccount and reconnectMailAccount
together); the 11th answers RATE_LIMITED without storing anything, other users go on."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from core.models import MailAccount
from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

NewUser = Callable[..., Awaitable[TestUser]]

LIMIT = 10

RECONNECT = """
mutation Reconnect($input: ReconnectMailAccountInput!) {
  reconnectMailAccount(input: $input) {
    account { id status }
    userErrors { code field message }
  }
}
"""


async def _accounts_of(runtime: Runtime, user: TestUser) -> int:
    async with runtime.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(MailAccount).where(MailAccount.owner_id == user.id)
        )
    return count or 0


async def _add(client: GraphQLClient, input_: dict[str, Any]) -> dict[str, Any]:
    data = await client.execute(ADD_ACCOUNT, {"input": input_})
    payload: dict[str, Any] = data["addMailAccount"]
    return payload


def _codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def _use_up_the_limit(client: GraphQLClient, server: ImapServer) -> None:
    for attempt in range(LIMIT):
        payload = await _add(client, account_input(server, password=f"wrong-{attempt}"))
        assert _codes(payload) == ["INVALID_CREDENTIALS"], (attempt, payload)


async def test_eleventh_check_in_a_minute_is_rate_limited_and_stores_nothing(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    await _use_up_the_limit(client, pymap)

    # Even the right password is not checked any more.
    payload = await _add(client, account_input(pymap))

    assert payload["account"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "RATE_LIMITED"
    assert error["message"]
    assert await _accounts_of(runtime, user) == 0
    me = await client.execute("{ me { mailAccounts { id } } }")
    assert me["me"]["mailAccounts"] == []


async def test_another_user_is_not_limited(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    limited, other = await new_user(), await new_user()
    await _use_up_the_limit(gql.as_user(limited.token), pymap)
    assert _codes(await _add(gql.as_user(limited.token), account_input(pymap))) == ["RATE_LIMITED"]

    payload = await _add(gql.as_user(other.token), account_input(pymap))

    assert payload["userErrors"] == []
    assert payload["account"]["status"] == "READY"
    assert await _accounts_of(runtime, other) == 1
    assert await _accounts_of(runtime, limited) == 0


async def test_another_user_in_the_same_company_is_not_limited(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    company = f"Limits {uuid.uuid4().hex[:8]}"
    limited, colleague = await new_user(company=company), await new_user(company=company)
    await _use_up_the_limit(gql.as_user(limited.token), pymap)

    payload = await _add(gql.as_user(colleague.token), account_input(pymap, password="nope"))

    assert _codes(payload) == ["INVALID_CREDENTIALS"]


async def test_invalid_input_is_not_a_credential_check(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    for _ in range(LIMIT + 2):
        payload = await _add(client, account_input(pymap, port=0))
        assert _codes(payload) == ["INVALID_INPUT"]

    payload = await _add(client, account_input(pymap))

    assert payload["userErrors"] == []
    assert await _accounts_of(runtime, user) == 1


async def test_reconnect_attempts_count_towards_the_same_limit(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    added = await _add(client, account_input(pymap))  # check 1
    assert added["userErrors"] == []
    account_id = added["account"]["id"]

    for attempt in range(LIMIT - 1):  # checks 2..10
        data = await client.execute(
            RECONNECT, {"input": {"accountId": account_id, "imapPassword": f"wrong-{attempt}"}}
        )
        assert _codes(data["reconnectMailAccount"]) == ["INVALID_CREDENTIALS"]

    data = await client.execute(
        RECONNECT, {"input": {"accountId": account_id, "imapPassword": pymap.password}}
    )
    payload = data["reconnectMailAccount"]
    assert payload["account"] is None
    assert _codes(payload) == ["RATE_LIMITED"]
