"""Serving the ASGI app with uvicorn, with a quiet, graceful Ctrl-C."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess


class _GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn re-raises the signal it shut down on, which surfaces as a traceback from
        the app's lifespan; the shutdown has already happened, so forget the signal."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit and self.on_started is not None:
            self.on_started()  # the app has started and the socket accepts connections


def serve_app(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    log_level: str | None = None,
    sock: socket.socket | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until a signal; ``sock``: an already bound socket (``host``/``port`` are then
    only its name); ``on_started`` runs once the server accepts connections."""
    # log_config=None: uvicorn's loggers go through the process's own logging set-up
    # (core/logs.py: text or JSON, the request id, access lines without query strings).
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, log_config=None, proxy_headers=True
    )
    server = _GracefulServer(config, on_started)
    # Server.run, not asyncio.run(server.serve()): it runs on uvicorn's loop factory, so
    # uvloop when installed (it is pinned). The plain asyncio loop cost the inbox page
    # about a third of its throughput (bench/README.md, "Load benchmark").
    server.run(sockets=[sock] if sock is not None else None)


def serve_workers(app: str, *, host: str, port: int, workers: int) -> None:
    """``workers`` processes serving the app named by the import string ``app`` (a
    factory) on one listening socket, supervised by uvicorn: a worker that dies is
    replaced, SIGTERM or Ctrl-C stops them all gracefully. A process is one event loop
    on one core, so this is how one machine's cores are used."""
    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )
    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (OSError when the port is taken; with
    SO_REUSEADDR only a listening socket keeps a second one from binding the same port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock
