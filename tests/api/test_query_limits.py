"""Oversized queries are refused before they run: depth, aliases and tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from api.graphql.limits import GraphQLLimits
from api.graphql.schema import MAX_ALIASES, MAX_DEPTH
from tests.support.factories import TestUser
from tests.support.graphql import GraphQLClient

NewUser = Callable[..., Awaitable[TestUser]]
MAX_TOKENS = GraphQLLimits().max_tokens


def deep_query(depth: int) -> str:
    """``{ me { mailAccounts { owner { ... { id } } } } }`` of operation depth ``depth``.

    Depth counts as the limiter does: ``me`` is at depth 0, so ``{ me { id } }`` is 1.
    """
    fields = ["mailAccounts" if level % 2 == 0 else "owner" for level in range(depth - 1)]
    inner = "id"
    for name in reversed(fields):
        inner = f"{name} {{ {inner} }}"
    return f"{{ me {{ {inner} }} }}"


def aliased_query(aliases: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(aliases)) + " }"


def long_query(tokens: int) -> str:
    """A valid document of exactly ``tokens`` lexical tokens.

    ``__typename @skip(if: false)`` is 8 tokens, a bare ``__typename`` 1, the braces 2.
    (Hundreds of identical bare fields would trip graphql-core's validation instead.)
    """
    skipped, bare = divmod(tokens - 2, 8)
    return "{ " + "__typename @skip(if: false) " * skipped + "__typename " * bare + "}"


async def _refused(client: GraphQLClient, query: str) -> list[dict[str, Any]]:
    response = await client.post(query)
    body = response.json()
    assert response.status_code == 200, body
    assert body["data"] is None, body
    assert body["errors"], body
    errors: list[dict[str, Any]] = body["errors"]
    return errors


@pytest.fixture
async def signed_in(gql: GraphQLClient, new_user: NewUser) -> GraphQLClient:
    user = await new_user()
    return gql.as_user(user.token)


async def test_a_normal_query_within_every_limit_runs(
    signed_in: GraphQLClient,
) -> None:
    data = await signed_in.execute(
        "{ me { email company { name plan accountLimit } mailAccounts { id } } }"
    )
    assert data["me"]["company"]["accountLimit"] == 1
    assert data["me"]["mailAccounts"] == []


async def test_a_query_at_the_depth_limit_runs(signed_in: GraphQLClient) -> None:
    data = await signed_in.execute(deep_query(MAX_DEPTH))
    assert data["me"]["mailAccounts"] == []


async def test_a_query_deeper_than_the_limit_is_refused(signed_in: GraphQLClient) -> None:
    [error] = await _refused(signed_in, deep_query(MAX_DEPTH + 1))
    assert f"exceeds maximum operation depth of {MAX_DEPTH}" in error["message"]


async def test_depth_is_checked_before_authentication(gql: GraphQLClient) -> None:
    """An anonymous caller cannot use a deep query to reach the resolvers either."""
    [error] = await _refused(gql, deep_query(MAX_DEPTH + 5))
    assert "maximum operation depth" in error["message"]
    assert (error.get("extensions") or {}).get("code") != "UNAUTHENTICATED"


async def test_the_alias_limit_is_inclusive(signed_in: GraphQLClient) -> None:
    data = await signed_in.execute(aliased_query(MAX_ALIASES))
    assert len(data) == MAX_ALIASES


async def test_too_many_aliases_are_refused(signed_in: GraphQLClient) -> None:
    [error] = await _refused(signed_in, aliased_query(MAX_ALIASES + 1))
    assert error["message"] == f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"


async def test_the_token_limit_is_inclusive(signed_in: GraphQLClient) -> None:
    data = await signed_in.execute(long_query(MAX_TOKENS))
    assert data == {"__typename": "Query"}


async def test_too_many_tokens_are_refused(signed_in: GraphQLClient) -> None:
    [error] = await _refused(signed_in, long_query(MAX_TOKENS + 1))
    assert f"more than {MAX_TOKENS} tokens" in error["message"]
