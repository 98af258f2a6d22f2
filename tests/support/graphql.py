"""A small GraphQL-over-HTTP client for tests."""

from __future__ import annotations

from typing import Any

import httpx


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, url: str, token: str | None = None) -> None:
        self.http = http
        self.url = url
        self.token = token

    def as_user(self, token: str | None) -> GraphQLClient:
        return GraphQLClient(self.http, self.url, token)

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a successful response; fails the test on any top-level error."""
        response = await self.post(query, variables)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def errors(self, query: str, variables: dict[str, Any] | None = None) -> list[Any]:
        """The top-level errors of a response that must have some."""
        body = (await self.post(query, variables)).json()
        assert body.get("errors"), body
        errors: list[Any] = body["errors"]
        return errors
