"""Serving the ASGI app with uvicorn, with a quiet, graceful Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class _GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn re-raises the signal it shut down on, which surfaces as a traceback from
        the app's lifespan; the shutdown has already happened, so forget the signal."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve_app(app: ASGIApp, *, host: str, port: int, log_level: str = "info") -> None:
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=True)
    asyncio.run(_GracefulServer(config).serve())
