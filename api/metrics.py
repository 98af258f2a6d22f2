"""``/metrics`` (Prometheus text format), the GraphQL request metrics, and the timer that
refreshes the gauges that need SQL or Redis (never computed per scrape)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

from arq.constants import default_queue_name, in_progress_key_prefix
from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from core import metrics
from core.accounts import repository as accounts
from core.models.enums import AccountStatus
from core.runtime import Runtime
from core.sending import repository as sending
from core.tasks import in_background

log = logging.getLogger(__name__)

GAUGE_REFRESH_SECONDS = 15.0


async def metrics_endpoint(request: Request) -> Response:
    """The process's metrics; with ``MAILSYNC_METRICS_TOKEN`` set, only for that bearer."""
    runtime: Runtime = request.app.state.runtime
    expected = runtime.settings.metrics_token
    if expected:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Response("metrics need the metrics token\n", 401, media_type="text/plain")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _result_of(errors: list[GraphQLError] | None) -> str:
    if not errors:
        return "ok"
    code = (errors[0].extensions or {}).get("code")
    return code if isinstance(code, str) and code.isupper() and len(code) <= 40 else "error"


class RequestMetrics(SchemaExtension):
    """Counts each operation by type and result and times queries and mutations."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            operation = context.operation_type.value.lower()
        except Exception:  # the document did not parse: there is no operation
            operation = "unknown"
        errors = context.pre_execution_errors or (
            context.result.errors if context.result is not None else None
        )
        metrics.GRAPHQL_REQUESTS.labels(operation, _result_of(errors)).inc()
        if operation in ("query", "mutation"):
            metrics.GRAPHQL_DURATION.labels(operation).observe(time.perf_counter() - started)


async def refresh_gauges(runtime: Runtime) -> None:
    """One refresh of the gauges that need a query: accounts by status, overdue accounts,
    unfinished sends (PostgreSQL), queue depth and jobs in progress (Redis)."""
    now = datetime.now(UTC)
    late = now - 2 * timedelta(seconds=runtime.settings.sync_interval_seconds)
    async with runtime.session_factory() as session:
        by_status = await accounts.count_by_status(session)
        overdue = await accounts.count_overdue(session, late)
        unfinished = await sending.count_queued(session)
    for status in AccountStatus:
        metrics.ACCOUNTS.labels(status.value).set(by_status.get(status, 0))
    metrics.ACCOUNTS_OVERDUE.set(overdue)
    metrics.OUTGOING_UNFINISHED.set(unfinished)
    metrics.QUEUE_DEPTH.set(await runtime.redis.zcard(default_queue_name))
    running = 0
    async for _ in runtime.redis.scan_iter(match=f"{in_progress_key_prefix}*", count=1000):
        running += 1
    metrics.JOBS_IN_PROGRESS.set(running)


@contextlib.asynccontextmanager
async def gauge_refresher(
    runtime: Runtime, every: float = GAUGE_REFRESH_SECONDS
) -> AsyncIterator[None]:
    """Refresh the gauges every ``every`` seconds while the app runs; a failed refresh
    (PostgreSQL or Redis away) leaves the last values and is tried again next time."""

    async def loop() -> None:
        while True:
            try:
                await refresh_gauges(runtime)
            except Exception as exc:
                log.warning("metrics: gauges not refreshed: %s", type(exc).__name__)
            await asyncio.sleep(every)

    async with in_background(loop(), name="mailsync-metrics-gauges"):
        yield
