"""What an operator sees: /metrics in Prometheus format, request ids, JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from api.metrics import refresh_gauges
from core.db import session_scope
from core.logs import JsonFormatter, LogSettings, configure_logging, job_logging
from core.models import AccountStatus, MailAccount, PastSync
from core.settings import Settings
from tests.support.app import RunningApp, free_port, serve
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

NewUser = Callable[..., Awaitable[TestUser]]
MAILSYNC = str(Path(sys.executable).with_name("mailsync"))
ME = "query Me { me { id } }"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics body, parsed by prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient, app: RunningApp, **headers: str) -> httpx.Response:
    return await http.get(f"{app.base_url}/metrics", headers=headers)


async def test_metrics_count_operations_by_type_and_result(
    running_app: RunningApp, http: httpx.AsyncClient, gql: GraphQLClient, new_user: NewUser
) -> None:
    user = await new_user()
    before = samples((await scrape(http, running_app)).text)
    await gql.as_user(user.token).execute(ME)
    await gql.as_user(user.token).execute(ME)
    refused = await gql.as_user("not-a-token").post(ME)
    assert refused.status_code in (200, 401)
    response = await scrape(http, running_app)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    ok = "mailsync_graphql_requests_total"
    assert (
        value(after, ok, operation="query", result="ok")
        - value(before, ok, operation="query", result="ok")
        == 2
    )
    assert (
        value(after, ok, operation="query", result="UNAUTHENTICATED")
        - value(before, ok, operation="query", result="UNAUTHENTICATED")
        >= 1
    )
    count = "mailsync_graphql_request_duration_seconds_count"
    assert value(after, count, operation="query") - value(before, count, operation="query") >= 2
    # The pool gauges read the pool at scrape time: the API holds none between requests.
    assert ("mailsync_db_pool_checked_out", frozenset()) in after
    assert value(after, "mailsync_db_pool_checked_out") == 0


async def test_gauges_that_need_sql_come_from_the_timer(
    running_app: RunningApp,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    new_user: NewUser,
    dovecot: ImapServer,
) -> None:
    """Accounts by status, overdue accounts and the queue are refreshed by the API's timer
    (here: one refresh, as the timer runs it), not computed by the scrape."""
    user = await new_user()
    added = await gql.as_user(user.token).execute(ADD_ACCOUNT, {"input": account_input(dovecot)})
    assert added["addMailAccount"]["userErrors"] == []
    await refresh_gauges(running_app.runtime)
    parsed = samples((await scrape(http, running_app)).text)
    assert value(parsed, "mailsync_accounts", status=AccountStatus.READY.value) >= 1
    assert ("mailsync_queue_depth", frozenset()) in parsed
    assert ("mailsync_jobs_in_progress", frozenset()) in parsed
    assert value(parsed, "mailsync_accounts_overdue") == 0
    # Active, and its last sync finished three intervals ago: overdue, whatever the
    # scheduler did to next_sync_at when it queued the sync that has not run yet.
    interval = timedelta(seconds=running_app.runtime.settings.sync_interval_seconds)
    account_id = uuid.UUID(added["addMailAccount"]["account"]["id"])
    async with session_scope(running_app.runtime.session_factory) as session:
        await session.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id)
            .values(
                status=AccountStatus.ACTIVE,
                past_sync=PastSync.ONE_MONTH,
                last_synced_at=datetime.now(UTC) - 3 * interval,
                next_sync_at=datetime.now(UTC) + interval,
            )
        )
    await refresh_gauges(running_app.runtime)
    parsed = samples((await scrape(http, running_app)).text)
    assert value(parsed, "mailsync_accounts_overdue") == 1


async def test_metrics_token_guards_the_endpoint(
    make_settings: Callable[..., Settings], http: httpx.AsyncClient
) -> None:
    async with serve(make_settings(metrics_token="m3trics")) as app:
        anonymous = await scrape(http, app)
        wrong = await scrape(http, app, authorization="Bearer nope")
        right = await scrape(http, app, authorization="Bearer m3trics")
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "mailsync_graphql_requests" in right.text


async def test_request_id_is_echoed_or_made(
    running_app: RunningApp, http: httpx.AsyncClient
) -> None:
    url = f"{running_app.base_url}/healthz"
    given = await http.get(url, headers={"x-request-id": "req-123.abc"})
    assert given.headers["x-request-id"] == "req-123.abc"
    made = await http.get(url)
    assert len(made.headers["x-request-id"]) == 32
    # A value that could forge a log line (spaces, quotes, too long) is replaced, not kept.
    for hostile in ["a b", 'x"}{"level":"ERROR', "y" * 129]:
        answer = await http.get(url, headers={"x-request-id": hostile})
        assert answer.headers["x-request-id"] != hostile
        assert len(answer.headers["x-request-id"]) == 32
    graphql = await http.post(
        running_app.graphql_url, json={"query": ME}, headers={"x-request-id": "gql-1"}
    )
    assert graphql.headers["x-request-id"] == "gql-1"


def test_json_lines_carry_job_context_and_exceptions() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(log_format="json", log_level="INFO"), stream=stream)
    try:
        log = logging.getLogger("mailsync.test")
        with job_logging(account_id="acc-1", job_try=2):
            log.info("synced %d", 3)
        log.debug("hidden at INFO")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["synced 3", "failed"]
    assert lines[0]["account_id"] == "acc-1" and lines[0]["job_try"] == 2
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "mailsync.test"
    assert "account_id" not in lines[1]
    assert "ValueError: boom" in lines[1]["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


async def test_api_process_logs_one_json_object_per_line_without_secrets(
    database_url: str, redis_server: str, secret_key: str
) -> None:
    """`mailsync api` with MAILSYNC_LOG_FORMAT=json: every stderr line is a JSON object,
    access lines carry the request id, and the query string (an OAuth code) is not logged."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update(
        MAILSYNC_DATABASE_URL=database_url,
        MAILSYNC_REDIS_URL=redis_server,
        MAILSYNC_SECRET_KEYS=secret_key,
        MAILSYNC_LOG_FORMAT="json",
        MAILSYNC_PORT=str(port),
    )
    process = subprocess.Popen(  # noqa: ASYNC220  # read after it stops, not awaited
        [MAILSYNC, "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the API did not start"
                    assert process.poll() is None, process.communicate()
                    await asyncio.sleep(0.1)
            await http.get(
                f"http://127.0.0.1:{port}/oauth/callback?code=SECRET-CODE&state=s",
                headers={"x-request-id": "trace-42"},
            )
            await http.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": ME},
                headers={"x-request-id": "trace-43"},
            )
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing logged"
    assert "SECRET-CODE" not in stderr
    access = {line.get("request_id"): line for line in lines if line["logger"] == "uvicorn.access"}
    assert access["trace-42"]["path"] == "/oauth/callback"
    assert access["trace-43"]["method"] == "POST" and access["trace-43"]["status"] == 401
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
