"""Prometheus metrics of every process (prometheus_client's default registry).

The API serves them at ``/metrics``; a worker serves its own on
``MAILSYNC_WORKER_METRICS_PORT`` (off the request path). Gauges that need SQL or a scan
of Redis are refreshed on a timer by the API (``api/metrics.py``), never per scrape.
Label values are bounded sets (operation types, error codes, statuses), never ids.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SYNC_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

# The API.
GRAPHQL_REQUESTS = Counter(
    "mailsync_graphql_requests",
    "GraphQL operations by type and result (ok, or the first error's code).",
    ["operation", "result"],
)
GRAPHQL_DURATION = Histogram(
    "mailsync_graphql_request_duration_seconds",
    "Time to execute a GraphQL query or mutation.",
    ["operation"],
    buckets=_SECONDS,
)
WEBSOCKETS_OPEN = Gauge("mailsync_websockets_open", "Open, authenticated GraphQL websockets.")

# Both: the connection pool of this process (set from the pool at scrape time).
POOL_CHECKED_OUT = Gauge(
    "mailsync_db_pool_checked_out", "PostgreSQL connections in use by this process."
)
POOL_OVERFLOW = Gauge(
    "mailsync_db_pool_overflow", "Connections open beyond the pool size (negative: unused)."
)
POOL_PINGS = Counter(
    "mailsync_db_pool_pings",
    "Connections pinged on checkout because they sat idle in the pool (core/db.py).",
)

# Refreshed on a timer by the API (SQL and Redis).
ACCOUNTS = Gauge("mailsync_accounts", "Mail accounts by status.", ["status"])
ACCOUNTS_OVERDUE = Gauge(
    "mailsync_accounts_overdue",
    "Active accounts whose last sync finished more than two sync intervals ago.",
)
QUEUE_DEPTH = Gauge("mailsync_queue_depth", "Jobs waiting in the arq queue.")
JOBS_IN_PROGRESS = Gauge("mailsync_jobs_in_progress", "Jobs a worker is running now.")
OUTGOING_UNFINISHED = Gauge(
    "mailsync_outgoing_unfinished", "Outgoing messages queued or being sent."
)

# Workers.
SYNC_RUNS = Counter(
    "mailsync_sync_runs", "Sync runs by result (ok, or the failure's code).", ["result"]
)
SYNC_DURATION = Histogram(
    "mailsync_sync_duration_seconds", "Duration of sync runs that ran.", buckets=_SYNC_SECONDS
)
SYNC_LAG = Histogram(
    "mailsync_sync_lag_seconds",
    "How late a sync started: now minus the time it was due.",
    buckets=_SYNC_SECONDS,
)
MESSAGES_INGESTED = Counter("mailsync_messages_ingested", "New messages stored by syncs.")
IMAP_ERRORS = Counter(
    "mailsync_imap_errors",
    "Failed sync runs by kind (TIMEOUT, CONNECTION_FAILED, INVALID_CREDENTIALS, ...).",
    ["kind"],
)
SENDS = Counter(
    "mailsync_sends", "Delivery outcomes of outgoing messages (sent, failed, retry).", ["outcome"]
)


def track_pool(engine: Any) -> None:
    """The pool gauges read ``engine``'s pool at scrape time (this process has one engine)."""
    pool = engine.pool
    if callable(getattr(pool, "checkedout", None)):
        POOL_CHECKED_OUT.set_function(pool.checkedout)
    if callable(getattr(pool, "overflow", None)):
        POOL_OVERFLOW.set_function(pool.overflow)


def serve_worker_metrics(host: str, port: int) -> None:
    """A worker's metrics on their own port, in a thread of prometheus_client's."""
    start_http_server(port, addr=host)
