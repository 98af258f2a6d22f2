"""Past a number of HTTP requests in flight, answer 503 at once instead of queueing.

A process that accepts every request shares its CPU and its database pool among all of
them, so under a burst every request waits seconds and throughput falls (issue 21: 34
pages/s at 10 connections, 17 at 500). Refusing what is beyond ``max_in_flight`` costs
microseconds, keeps the admitted requests as fast as at low load, and tells clients (and
a load balancer) when to come back: ``Retry-After``. Health and metrics are never
refused, so an orchestrator does not take a busy process for a dead one; websockets are
long-lived and not counted (their own caps apply).
"""

from __future__ import annotations

import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CODE = "UNAVAILABLE"  # the code a client already retries on (api/graphql/errors.py)

SHED = Counter(
    "mailsync_http_requests_shed_total",
    "HTTP requests answered 503 because the process had its most requests in flight",
)


class LoadShedding:
    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        body = {
            "errors": [
                {
                    "message": "The server is at capacity; retry shortly.",
                    "extensions": {"code": CODE},
                }
            ]
        }
        self._body = json.dumps(body, separators=(",", ":")).encode()
        self._start = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._body)).encode()),
                (b"retry-after", str(retry_after_seconds).encode()),
            ],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            SHED.inc()
            await send(self._start)
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
