"""At most ``max_in_flight`` HTTP requests served at once; past a short wait, 503.

A process that works on every request it accepts shares its CPU and its database pool
among all of them, so under a burst every request waits seconds and throughput falls
(issue 21: 34 pages/s at 10 connections, 17 at 500). Here a request beyond the limit
waits, doing nothing, for a slot; if none frees within ``queue_seconds`` it is answered
503 with ``Retry-After`` (``queue_seconds`` 0: at once). The admitted requests stay as
fast as at low load, nobody waits for seconds, and the refusals come at a bounded rate
(a refusal answered at once is re-sent at once by a client in a loop, and thousands of
them a second would take the CPU from the admitted requests). Health and metrics are
never held or refused, so an orchestrator does not take a busy process for a dead one;
websockets are long-lived and not counted (their own caps apply).
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CODE = "UNAVAILABLE"  # the code a client already retries on (api/graphql/errors.py)

SHED = Counter(
    "mailsync_http_requests_shed_total",
    "HTTP requests answered 503 because the process had its most requests in flight",
)
IN_FLIGHT = Gauge(
    "mailsync_http_requests_in_flight",
    "HTTP requests being served (health and metrics not counted)",
)


class LoadShedding:
    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        queue_seconds: float = 0.0,
        retry_after_seconds: int = 1,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.queue_seconds = queue_seconds
        self._slots = asyncio.Semaphore(max_in_flight)  # FIFO among the waiting
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
        if not await self._admitted():
            SHED.inc()
            await send(self._start)
            await send({"type": "http.response.body", "body": self._body})
            return
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            IN_FLIGHT.dec()
            self._slots.release()

    async def _admitted(self) -> bool:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: no wait
            return True
        if self.queue_seconds <= 0:
            return False
        try:
            async with asyncio.timeout(self.queue_seconds):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True
