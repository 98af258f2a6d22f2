"""What any caller can send, with or without a token: sizes, costs and malformed requests
are refused before any work, as client errors with a code, never a 500 or a masked one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.graphql.limits import DocumentCache, GraphQLLimits, _Entry
from core.runtime import Runtime
from core.settings import Settings
from tests.support.accounts import NewUser
from tests.support.app import RunningApp, serve
from tests.support.graphql import GraphQLClient
from tests.support.inbox import seed_account, seed_messages

LIMITS = GraphQLLimits()


def nested_thread(levels: int, first: int = 100) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"id thread {{ {inner} }}"
    return f"{{ inbox(first: {first}) {{ edges {{ node {{ {inner} }} }} }} }}"


async def _code(response: httpx.Response) -> tuple[int, str | None]:
    body = response.json()
    [error] = body["errors"]
    return response.status_code, (error.get("extensions") or {}).get("code")


async def test_a_huge_body_is_refused_with_413_before_it_is_read(
    http: httpx.AsyncClient, running_app: RunningApp
) -> None:
    """A 30 MB query made of a comment was parsed for 13 s and blocked /healthz."""
    body = json.dumps({"query": "#" + "x" * 30_000_000 + "\n{ __typename }"})
    started = time.monotonic()
    response = await http.post(
        running_app.graphql_url, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    health = await http.get(f"{running_app.base_url}/healthz")
    assert health.status_code == 200
    assert time.monotonic() - started < 10


async def test_a_body_without_length_is_cut_off_at_the_limit(
    http: httpx.AsyncClient, running_app: RunningApp
) -> None:
    async def chunks() -> Any:
        for _ in range(12):  # 12 MiB in all, with no Content-Length
            yield b" " * (1024 * 1024)

    response = await http.post(
        running_app.graphql_url, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_query_text_over_the_limit_is_refused_before_parsing(gql: GraphQLClient) -> None:
    query = "{ __typename }" + " " * LIMITS.max_query_chars
    status, code = await _code(await gql.post(query))
    assert (status, code) == (200, "QUERY_TOO_LARGE")


def test_the_document_cache_is_bounded_by_bytes_not_entries() -> None:
    """Eight distinct 20 MB queries kept 380 MB alive in strawberry's count-bounded caches."""
    cache = DocumentCache(max_bytes=100_000)
    from graphql import parse

    for i in range(50):
        text = f"{{ a{i}: __typename }}" + " " * 19_000
        cache.put(text, _Entry(parse(text)))
    assert cache.size_bytes <= 100_000
    assert cache.get(f"{{ a49: __typename }}{' ' * 19_000}") is not None  # the newest stay
    assert cache.get(f"{{ a0: __typename }}{' ' * 19_000}") is None


async def test_nested_threads_are_refused_by_cost_before_they_run(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    """6 levels of `thread` on an 8-message thread produced 4.3 MB in 48 s."""
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(runtime, account, [{"message_id": f"<t{i}@x>"} for i in range(8)])
    client = gql.as_user(user.token)
    for levels in (2, 6):
        [error] = await client.errors(nested_thread(levels))
        assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
        assert error["extensions"]["cost"] > LIMITS.max_cost
    errors = await client.errors(nested_thread(9))  # 9 levels: deeper than any query may be
    assert all("exceeds maximum operation depth" in e["message"] for e in errors)
    # A conversation view's query is within the budget and runs.
    data = await client.execute(nested_thread(1, first=50))
    assert len(data["inbox"]["edges"]) == 8


async def test_aliases_multiply_the_cost(gql: GraphQLClient, new_user: NewUser) -> None:
    user = await new_user()
    page = "inbox(first: 100) { edges { node { id to { address } cc { address } } } }"
    one = await gql.as_user(user.token).execute(f"{{ {page} }}")
    assert one["inbox"]["edges"] == []
    many = " ".join(f"a{i}: {page}" for i in range(20))
    [error] = await gql.as_user(user.token).errors(f"{{ {many} }}")
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_another_client_is_served_while_an_expensive_query_is_refused(
    gql: GraphQLClient, new_user: NewUser
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    refused = [client.post(nested_thread(6)) for _ in range(20)]
    started = time.monotonic()
    results = await asyncio.gather(*refused, client.execute("{ me { id } }"))
    assert results[-1]["me"]["id"] == str(user.id)
    assert time.monotonic() - started < 5
    assert all(
        r.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX" for r in results[:-1]
    )


@pytest.mark.parametrize(
    ("query", "variables", "path"),
    [
        (
            "mutation($input: SendEmailInput!) "
            "{ sendEmail(input: $input) { userErrors { code } } }",
            {"input": {"to": [f"r{i}@x.example" for i in range(200_000)], "subject": "s"}},
            "$input.to",
        ),
        (
            "query($ids: [ID!]) { inbox(filter: {accountIds: $ids}) { edges { cursor } } }",
            {"ids": ["00000000-0000-0000-0000-000000000001"] * 200_000},
            "$ids",
        ),
        (
            "mutation($ids: [ID!]!) "
            "{ markMessages(ids: $ids, read: true) { userErrors { code } } }",
            {"ids": ["x"] * 1_000_001},
            "$ids",
        ),
    ],
)
async def test_lists_are_size_checked_before_their_items(
    gql: GraphQLClient, new_user: NewUser, query: str, variables: dict[str, Any], path: str
) -> None:
    """200,000 recipients took 10 s before the 100-recipient error, 1e6 ids 4 to 9 s."""
    user = await new_user()
    response = await gql.as_user(user.token).post(query, variables)
    if response.status_code == 413:  # larger than a request may be: refused unread
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        return
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "INVALID_INPUT", "path": path}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"query": "{ me { id } }", "variables": {"x": "\xff\xfe"}}', "application/json"),
        (
            b'{"query": "{ __typename }", "variables": '
            + b'{"a":' * 100_000
            + b"1"
            + b"}" * 100_001,
            "application/json",
        ),
        (b"[" * 50_000, "application/json"),
        (b"not json", "application/json"),
        (b'{"query": 42}', "application/json"),
        (b"query=x", "text/plain"),
    ],
)
async def test_malformed_bodies_are_client_errors(
    http: httpx.AsyncClient, running_app: RunningApp, content: bytes, content_type: str
) -> None:
    response = await http.post(
        running_app.graphql_url, content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "value", ["a\x00b", "\ud800", "x\udfffy", "\x00" * 5], ids=["nul", "high", "low", "nuls"]
)
async def test_strings_postgresql_cannot_store_are_client_errors(
    gql: GraphQLClient, new_user: NewUser, value: str
) -> None:
    user = await new_user()
    client = gql.as_user(user.token)
    mutation = """mutation($input: UpdateMailAccountInput!) {
      updateMailAccount(input: $input) { userErrors { code } } }"""
    variables = {
        "input": {"accountId": "00000000-0000-0000-0000-000000000001", "displayName": value}
    }
    response = await client.http.post(  # as JSON escapes: UTF-8 cannot carry a lone surrogate
        client.url,
        content=json.dumps({"query": mutation, "variables": variables}),
        headers={"authorization": f"Bearer {user.token}", "content-type": "application/json"},
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    literal = json.dumps(value)  # \u escapes in the query text itself
    response = await client.post(
        f"{{ inbox(filter: {{search: {literal}}}) {{ edges {{ cursor }} }} }}"
    )
    [error] = response.json()["errors"]
    # graphql-core refuses an escaped lone surrogate as a syntax error; NUL is ours to refuse
    code = (error.get("extensions") or {}).get("code")
    assert code == "INVALID_INPUT" or error["message"].startswith("Syntax Error"), error


async def test_unknown_input_fields_are_validation_errors_not_masked(
    gql: GraphQLClient, new_user: NewUser
) -> None:
    user = await new_user()
    mutation = (
        """mutation($input: SendEmailInput!) { sendEmail(input: $input) { userErrors { code } } }"""
    )
    [error] = await gql.as_user(user.token).errors(
        mutation, {"input": {"to": ["a@x.example"], "subject": "s", "bogus": 1}}
    )
    assert "bogus" in error["message"]
    assert error["message"] != "Unexpected error."


async def test_a_database_with_no_free_connection_is_unavailable_503_not_masked(
    gql: GraphQLClient, new_user: NewUser, runtime: Runtime
) -> None:
    """40 parallel calls held the pool and another user's `me` waited 32 s; now a request
    that finds no connection answers a retryable UNAVAILABLE within the pool timeout."""
    user = await new_user()
    client = gql.as_user(user.token)
    await client.execute("{ me { id } }")
    held = []
    pool = runtime.engine.pool
    try:
        for _ in range(pool.size() + runtime.settings.db_max_overflow):  # pool + overflow
            held.append(await runtime.engine.connect())
        started = time.monotonic()
        response = await client.post("{ mailAccounts { id } }")
        waited = time.monotonic() - started
    finally:
        for connection in held:
            await connection.close()
    assert response.status_code == 503
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert waited < runtime.settings.db_pool_timeout_seconds + 3
    assert (await client.execute("{ me { id } }"))["me"]["id"] == str(user.id)


async def test_401_answers_in_the_media_type_the_client_asked_for(
    http: httpx.AsyncClient, running_app: RunningApp
) -> None:
    response = await http.post(
        running_app.graphql_url,
        json={"query": "{ me { id } }"},
        headers={"accept": "application/graphql-response+json, application/json;q=0.9"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    plain = await http.post(running_app.graphql_url, json={"query": "{ me { id } }"})
    assert plain.headers["content-type"].startswith("application/json")


PRODUCTION_TYPOS = [
    ("{ me { emial } }", "emial"),  # a field
    ("{ inbox(frist: 5) { edges { cursor } } }", "frist"),  # an argument
    ("{ inbox(filter: {folderRole: INBX}) { edges { cursor } } }", "INBX"),  # an enum value
    ("query($f: InboxFiltr) { inbox(filter: $f) { edges { cursor } } }", "InboxFiltr"),  # type
    ("{ inbox(filter: {unred: true}) { edges { cursor } } }", "unred"),  # an input field
]


async def test_production_mode_suggests_no_names_and_hides_the_schema_from_strangers(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient, new_user: NewUser
) -> None:
    user = await new_user()
    auth = {"Authorization": f"Bearer {user.token}"}
    introspection = "{ __schema { types { name } } }"
    async with serve(make_settings(graphiql=False)) as app:
        typos = [
            await http.post(app.graphql_url, json={"query": q}, headers=auth)
            for q, _ in PRODUCTION_TYPOS
        ]
        anonymous = await http.post(app.graphql_url, json={"query": introspection})
        signed_in = await http.post(app.graphql_url, json={"query": introspection}, headers=auth)
        typename = await http.post(app.graphql_url, json={"query": "{ __typename }"})
    for response, (_, name) in zip(typos, PRODUCTION_TYPOS, strict=True):
        [error] = response.json()["errors"]
        assert name in error["message"]
        assert "Did you mean" not in error["message"], error["message"]
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "types" not in anonymous.text
    assert any(t["name"] == "MailAccount" for t in signed_in.json()["data"]["__schema"]["types"])
    assert typename.json() == {"data": {"__typename": "Query"}}
