"""The Starlette application: GraphQL over HTTP and websockets, health endpoints."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ResponseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from api.attachments import download_attachment
from api.body_limit import BodySizeLimit
from api.graphiql import ASSETS_PATH, graphiql_assets
from api.graphql.limits import GraphQLLimits
from api.graphql.schema import build_schema
from api.load_shedding import LoadShedding
from api.metrics import gauge_refresher, metrics_endpoint
from api.oauth_callback import oauth_callback
from api.request_id import RequestId
from api.view import MailsyncGraphQL
from api.web import ASSETS_PATH as WEB_ASSETS_PATH
from api.web import web_app_response, web_assets
from core.db import ping
from core.metrics import track_pool
from core.runtime import Runtime, open_runtime
from core.settings import Settings

log = logging.getLogger(__name__)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _redis_readiness(runtime: Runtime) -> str:
    try:
        await runtime.redis.ping()
    except Exception as exc:
        log.warning("readiness: redis unreachable: %s", type(exc).__name__)
        return "unreachable"
    try:
        policy = await runtime.redis.config_get("maxmemory-policy")
    except ResponseError:  # managed Redis may forbid CONFIG: reachable, policy unknown
        return "ok"
    value = policy.get(b"maxmemory-policy") or policy.get("maxmemory-policy")
    if isinstance(value, bytes):
        value = value.decode()
    # Evicted keys would lose queued jobs and rate-limit windows.
    return "ok" if value in (None, "noeviction") else f"evicts keys ({value})"


async def readyz(request: Request) -> JSONResponse:
    """Ready when PostgreSQL and Redis answer and Redis will not evict our keys."""
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await ping(runtime.engine)
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    checks["redis"] = await _redis_readiness(runtime)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
    )


# The collector's thresholds for a serving process (CPython's default: 700, 10, 10). At
# 700 a request's objects, alive while it waits on the database, were collected and
# promoted again and again: 6.7 % of the API's CPU at 10 connections and 9.3 % at 500
# (more requests alive at once, so older generations grew and full collections came
# often); 10,000 young objects between collections made it 2.5 % and 3.6 %, each young
# collection about 3 ms (load benchmark, bench/README.md).
GC_THRESHOLDS = (10_000, 20, 10)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime, gauge_refresher(runtime):
            app.state.runtime = runtime
            track_pool(runtime.engine)
            # Everything loaded so far (modules, the schema, pools) lives as long as the
            # process: out of the collector's way, a full collection no longer walks it,
            # which took the inbox page's p99 from ~125 ms towards its p50.
            gc.freeze()
            before = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
            try:
                yield
            finally:
                gc.set_threshold(*before)  # an app in a test process hands it back

    limits = GraphQLLimits(
        max_query_chars=settings.max_query_chars,
        max_cost=settings.query_cost_limit,
        production=not settings.graphiql,
    )
    graphql = MailsyncGraphQL(
        build_schema(limits, execution_seconds=settings.graphql_timeout_seconds),
        graphiql=settings.graphiql,
        subscriptions_per_socket=settings.subscriptions_per_socket,
        websockets_per_user=settings.websockets_per_user,
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/oauth/callback", oauth_callback),
        Route("/attachments/{token}", download_attachment, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    if settings.graphiql:
        routes.append(Mount(ASSETS_PATH, graphiql_assets()))
    if settings.web_app:
        routes.append(Route("/", lambda request: web_app_response()))
        routes.append(Mount(WEB_ASSETS_PATH, web_assets()))
    middleware = [
        # Outermost: a request beyond the limit is refused before any other work.
        Middleware(
            LoadShedding,
            max_in_flight=settings.max_in_flight,
            queue_seconds=settings.max_queue_seconds,
            retry_after_seconds=settings.shed_retry_after_seconds,
        ),
        Middleware(RequestId),
        Middleware(
            BodySizeLimit,
            max_bytes=settings.max_request_bytes,
            # The attachments, and room for the operation and the multipart framing.
            max_upload_bytes=settings.max_attachment_bytes + settings.max_request_bytes,
        ),
    ]
    if settings.cors_origin_list:
        # Explicit origins only; no cookies are involved (the token is a header).
        middleware.insert(
            2,
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                max_age=600,
            ),
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
    )
