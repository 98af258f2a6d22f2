"""The load benchmark's floor: the inbox page through a minimal Starlette endpoint.

It answers the benchmark's one query the way `mailsync api` does (bearer token looked
up, the page's accounts and folders, the page, the total count unless the folders' versions
are those it was counted at) with the *same SQL
statements and parameters* the API sends: ``capture`` runs the API's own repository code
once in-process and records what it sent; this server replays those statements through
a plain asyncpg pool per request and writes the same JSON. No GraphQL, no ORM, no
middleware: what is left is the database and the HTTP server, so the API's figure over
this one is what the framework costs.

python -m bench.load_floor SPEC.json PORT   (the spec is written by bench/load_bench.py)
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import asyncpg_dsn
from core.ids import MessageIds


def dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def build_app(spec: dict[str, Any]) -> Starlette:
    """``spec``: database_url, message_id_key (hex), user_id, and ``statements``: the
    token, scope, page and count statements as captured (SQL and parameters)."""
    state: dict[str, Any] = {}
    counts: dict[tuple[Any, ...], int] = {}
    ids = MessageIds(bytes.fromhex(spec["message_id_key"]))
    token_sql, token_args, hash_index = spec["token"]
    rest = [(sql, [_decode(a) for a in args]) for sql, args in spec["statements"]]
    token_args = [_decode(a) for a in token_args]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            asyncpg_dsn(spec["database_url"]), min_size=10, max_size=10
        )
        try:
            yield
        finally:
            await state["pool"].close()

    async def graphql(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        await request.body()  # the query itself is the benchmark's one document
        args = list(token_args)
        args[hash_index] = hashlib.sha256(header.removeprefix("Bearer ").encode()).digest()
        pool: asyncpg.Pool = state["pool"]
        async with pool.acquire() as connection:
            viewer = await connection.fetchrow(token_sql, *args)
        if viewer is None or str(viewer[0]) != spec["user_id"]:
            return Response(b'{"errors":[{"message":"unauthenticated"}]}', 401)
        async with pool.acquire() as connection:
            scope = await connection.fetch(rest[0][0], *rest[0][1])
            rows = await connection.fetch(rest[1][0], *rest[1][1])
        # Kept as the API keeps it (core/inbox/counts.py): under the scope's folders at
        # their versions (a scope row's first column and its last).
        key = tuple(sorted((row[0], row[-1]) for row in scope))
        total = counts.get(key)
        if total is None:
            async with pool.acquire() as connection:
                total = counts[key] = await connection.fetchval(rest[2][0], *rest[2][1])
        edges = [
            {
                "node": {
                    "id": ids.encode(row["id"]),
                    "subject": row["subject"],
                    "snippet": row["snippet"],
                    "isRead": row["is_read"],
                    "from": {"address": row["from_address"]} if row["from_address"] else None,
                    "account": {"id": str(row["account_id"])},
                }
            }
            for row in rows[:50]
        ]
        body = {"data": {"inbox": {"totalCount": total, "edges": edges}}}
        return Response(dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)


def _decode(value: Any) -> Any:
    """Parameters travel as JSON: tagged uuids, uuid arrays, bytes and datetimes."""
    import uuid
    from datetime import datetime

    if isinstance(value, dict):
        kind, raw = value["t"], value["v"]
        if kind == "uuid":
            return uuid.UUID(raw)
        if kind == "uuids":
            return [uuid.UUID(v) for v in raw]
        if kind == "bytes":
            return bytes.fromhex(raw)
        if kind == "datetime":
            return datetime.fromisoformat(raw)
    return value


def encode_parameter(value: Any) -> Any:
    import uuid
    from datetime import datetime

    if isinstance(value, uuid.UUID):
        return {"t": "uuid", "v": str(value)}
    if isinstance(value, list) and all(isinstance(v, uuid.UUID) for v in value):
        return {"t": "uuids", "v": [str(v) for v in value]}
    if isinstance(value, bytes):
        return {"t": "bytes", "v": value.hex()}
    if isinstance(value, datetime):
        return {"t": "datetime", "v": value.isoformat()}
    return value


def main() -> None:
    import uvicorn

    spec = json.loads(Path(sys.argv[1]).read_text())
    uvicorn.run(build_app(spec), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
