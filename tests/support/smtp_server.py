"""A real SMTP server (aiosmtpd) on a free loopback port, with AUTH LOGIN/PLAIN over plain TCP.

Use the ``smtp_server`` fixture in a test module with::

    from tests.support.smtp_server import smtp_server_fixture  # noqa: F401

It accepts exactly one user/password and records every AUTH attempt (login names and
whether it succeeded; never the password), so a test can tell that a login really happened.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.app import free_port

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


@dataclass
class SmtpServer:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    _attempts: list[AuthAttempt] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def attempts(self) -> list[AuthAttempt]:
        """Every AUTH the server has seen, in order (a copy: the server runs in a thread)."""
        with self._lock:
            return list(self._attempts)

    @property
    def successful_logins(self) -> list[str]:
        return [a.login for a in self.attempts if a.success]

    def record(self, attempt: AuthAttempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    def smtp_input(self, **overrides: Any) -> dict[str, Any]:
        """The `smtp` part of AddMailAccountInput for this server (no TLS)."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": "NONE",
            "username": self.username,
            "password": self.password,
        }
        values.update(overrides)
        return values


class _Authenticator:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    def __call__(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            self.server.record(AuthAttempt(mechanism, "", False))
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == self.server.username and auth_data.password == self.server.password.encode()
        self.server.record(AuthAttempt(mechanism, login, ok))
        return AuthResult(success=ok, handled=False)


class _AcceptEverything:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


@contextmanager
def running_smtp_server(
    username: str = "smtp-user@example.com", password: str | None = None
) -> Iterator[SmtpServer]:
    """Start aiosmtpd on a free loopback port; stop it on exit."""
    server = SmtpServer(
        host=LOOPBACK,
        port=free_port(),
        username=username,
        password=password or f"smtp-pass-{uuid.uuid4().hex[:12]}",
    )
    controller = Controller(
        _AcceptEverything(),
        hostname=LOOPBACK,
        port=server.port,
        authenticator=_Authenticator(server),
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    """A fresh aiosmtpd server per test, accepting one user and password."""
    with running_smtp_server() as server:
        yield server
