"""Who may call the API: bearer tokens over HTTP and websockets, GET, and the GraphiQL switch."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketDisconnect
from sqlalchemy import func, select

from core.accounts.service import change_company_plan
from core.db import session_scope
from core.models import MailAccount, Plan
from core.runtime import Runtime
from core.settings import Settings
from tests.support.app import RunningApp, serve
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.websocket import init, receives_nothing, subscribe, websocket

NewUser = Callable[..., Awaitable[TestUser]]

ME = "{ me { id email role company { name plan accountLimit } } }"
STATUS_CHANGED = "subscription { accountStatusChanged { id status } }"


def _assert_unauthenticated(response: httpx.Response) -> None:
    body = response.json()
    assert response.status_code == 401, body
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def _account_rows(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return await session.scalar(select(func.count()).select_from(MailAccount)) or 0


# -- HTTP ----------------------------------------------------------------------------------


async def test_me_without_a_token_is_401_unauthenticated(gql: GraphQLClient) -> None:
    _assert_unauthenticated(await gql.post(ME))


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer"])
async def test_me_with_an_invalid_token_is_401_unauthenticated(
    gql: GraphQLClient, new_user: NewUser, running_app: RunningApp, header: str
) -> None:
    await new_user()  # a real token exists, but not this one
    response = await gql.http.post(
        running_app.graphql_url, json={"query": ME}, headers={"Authorization": header}
    )
    _assert_unauthenticated(response)


async def test_me_with_a_valid_token_returns_the_user_and_company(
    gql: GraphQLClient, new_user: NewUser
) -> None:
    user = await new_user(company="Globex", admin=True)
    data = await gql.as_user(user.token).execute(ME)
    assert data["me"] == {
        "id": str(user.id),
        "email": user.email,
        "role": "ADMIN",
        "company": {"name": "Globex", "plan": "ADVANCED", "accountLimit": 1},
    }


async def test_a_token_only_shows_its_own_user(gql: GraphQLClient, new_user: NewUser) -> None:
    first = await new_user(company="Initech")
    second = await new_user(company="Umbrella", plan=Plan.POWER)
    data = await gql.as_user(second.token).execute(ME)
    assert data["me"]["email"] == second.email != first.email
    assert data["me"]["role"] == "REGULAR"
    assert data["me"]["company"] == {"name": "Umbrella", "plan": "POWER", "accountLimit": 3}


async def test_a_query_over_get_works(
    gql: GraphQLClient, new_user: NewUser, running_app: RunningApp
) -> None:
    user = await new_user()
    response = await gql.http.get(
        running_app.graphql_url,
        params={"query": "{ me { email } }"},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"me": {"email": user.email}}}


async def test_a_mutation_over_get_is_refused_and_changes_nothing(
    gql: GraphQLClient,
    new_user: NewUser,
    running_app: RunningApp,
    runtime: Runtime,
    pymap: ImapServer,
) -> None:
    user = await new_user()
    response = await gql.http.get(
        running_app.graphql_url,
        params={"query": ADD_ACCOUNT, "variables": json.dumps({"input": account_input(pymap)})},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    assert response.status_code in (400, 405), response.text
    assert "addMailAccount" not in response.text  # no payload came back
    assert await _account_rows(runtime) == 0


# -- websockets: graphql-transport-ws --------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"authorization": "Bearer not-a-real-token"},
        {"authorization": "not-even-bearer"},
    ],
    ids=["no-payload", "no-token", "wrong-token", "malformed-header"],
)
async def test_websocket_without_a_valid_token_is_closed_with_4403(
    running_app: RunningApp,
    http: httpx.AsyncClient,
    new_user: NewUser,
    payload: dict[str, Any] | None,
) -> None:
    await new_user()
    async with websocket(running_app, http) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await init(ws, payload)
    assert closed.value.code == 4403


async def test_websocket_with_a_valid_token_is_acknowledged(
    running_app: RunningApp, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    user = await new_user()
    async with websocket(running_app, http) as ws:
        reply = await init(ws, {"authorization": f"Bearer {user.token}"})
    assert reply["type"] == "connection_ack"


async def test_status_change_reaches_only_the_owners_subscription(
    gql: GraphQLClient,
    running_app: RunningApp,
    http: httpx.AsyncClient,
    runtime: Runtime,
    new_user: NewUser,
    pymap: ImapServer,
) -> None:
    owner = await new_user(company="Owner Co")
    stranger = await new_user(company="Stranger Co")
    added = await gql.as_user(owner.token).execute(ADD_ACCOUNT, {"input": account_input(pymap)})
    assert added["addMailAccount"]["userErrors"] == []
    account_id = added["addMailAccount"]["account"]["id"]

    async with (
        websocket(running_app, http) as owner_ws,
        websocket(running_app, http) as stranger_ws,
    ):
        await subscribe(owner_ws, runtime, owner, "owner-sub", STATUS_CHANGED)
        await subscribe(stranger_ws, runtime, stranger, "stranger-sub", STATUS_CHANGED)

        # ESSENTIAL has no email sync: the owner's only account is paused.
        async with session_scope(runtime.session_factory) as session:
            changed = await change_company_plan(session, runtime, "Owner Co", Plan.ESSENTIAL)
        assert [str(a.id) for a in changed] == [account_id]

        event = await owner_ws.receive_json(timeout=5)
        assert event == {
            "id": "owner-sub",
            "type": "next",
            "payload": {"data": {"accountStatusChanged": {"id": account_id, "status": "PAUSED"}}},
        }
        await receives_nothing(stranger_ws, seconds=1.0)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
async def test_a_subscription_over_plain_http_is_refused_not_an_internal_error(
    gql: GraphQLClient, new_user: NewUser, signed_in: bool
) -> None:
    """Subscriptions are served over websockets only; over HTTP the client must get a
    clear refusal (4xx), never a masked internal fault."""
    user = await new_user()
    response = await gql.as_user(user.token if signed_in else None).post(STATUS_CHANGED)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "Unexpected error" not in response.text


# -- GraphiQL and field suggestions ----------------------------------------------------------

TYPO = "{ me { emial } }"


async def test_default_app_serves_graphiql_and_suggests_field_names(
    gql: GraphQLClient, running_app: RunningApp
) -> None:
    page = await gql.http.get(running_app.graphql_url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    [error] = await gql.errors(TYPO)
    assert "Did you mean 'email'?" in error["message"]


async def test_app_without_graphiql_hides_it_and_gives_no_suggestions(
    make_settings: Callable[..., Settings],
    http: httpx.AsyncClient,
    new_user: NewUser,
) -> None:
    user = await new_user()
    auth = {"Authorization": f"Bearer {user.token}"}
    async with serve(make_settings(graphiql=False)) as app:
        page = await http.get(app.graphql_url, headers={"Accept": "text/html"})
        over_get = await http.get(
            app.graphql_url, params={"query": "{ me { email } }"}, headers=auth
        )
        typo = await http.post(app.graphql_url, json={"query": TYPO}, headers=auth)
        works = await http.post(app.graphql_url, json={"query": "{ me { email } }"}, headers=auth)

    assert page.status_code >= 400
    assert "graphiql" not in page.text.lower()
    assert over_get.status_code >= 400
    assert user.email not in over_get.text  # the query did not run
    [error] = typo.json()["errors"]
    assert "Cannot query field 'emial'" in error["message"]
    assert "Did you mean" not in error["message"]
    assert works.json() == {"data": {"me": {"email": user.email}}}  # POST still works
