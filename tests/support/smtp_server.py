"""A real SMTP server (aiosmtpd) on a free loopback port, with AUTH LOGIN/PLAIN.

Use the ``smtp_server`` fixture in a test module with::

    from tests.support.smtp_server import smtp_server_fixture  # noqa: F401

It accepts exactly one user/password and records every AUTH attempt (login names and
whether it succeeded; never the password), so a test can tell that a login really happened.
It also records every message it accepts (envelope and bytes), can answer DATA with
scripted replies (``reply_to_data``: e.g. one 451, or a 554 every time), and with
``tls_files`` offers STARTTLS and requires it before AUTH.

With ``introspection_url`` it also offers AUTH XOAUTH2 and checks each bearer token the
way Dovecot's oauth2 passdb does: an RFC 7662 introspection POST to the identity provider
(``tests/support/oauth_provider.py``), which must say the token is active and belongs to
the user named in the XOAUTH2 request. A refused token is answered as Google and Microsoft
do: a 334 challenge with a JSON error, then 535 once the client sends its empty line.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import threading
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
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


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpServer:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    starttls: bool = False
    _attempts: list[AuthAttempt] = field(default_factory=list, repr=False)
    _received: list[Received] = field(default_factory=list, repr=False)
    _data_replies: deque[str] = field(default_factory=deque, repr=False)
    _always: str | None = field(default=None, repr=False)
    _data_commands: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Called (in the server's thread) as each DATA arrives: what a test sees mid-delivery.
    on_data: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def received(self) -> list[Received]:
        """Every message accepted so far, in order."""
        with self._lock:
            return list(self._received)

    @property
    def data_commands(self) -> int:
        """How many messages were offered with DATA (accepted or not)."""
        with self._lock:
            return self._data_commands

    def reply_to_data(self, *replies: str, always: str | None = None) -> None:
        """Answer the next DATA commands with ``replies`` in turn (then accept), or every
        one with ``always``; e.g. ``"451 4.3.0 Try again later"``."""
        with self._lock:
            self._data_replies.extend(replies)
            self._always = always

    def take_data(self, envelope: Envelope) -> str:
        if self.on_data is not None:
            self.on_data()
        with self._lock:
            self._data_commands += 1
            if self._data_replies:
                return self._data_replies.popleft()
            if self._always is not None:
                return self._always
            self._received.append(
                Received(
                    str(envelope.mail_from),
                    [str(r) for r in envelope.rcpt_tos],
                    bytes(envelope.original_content or b""),
                )
            )
            return "250 OK"

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
            "security": "STARTTLS" if self.starttls else "NONE",
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


class _Recorder:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.server.take_data(envelope)


_XOAUTH2_ERROR = base64.b64encode(
    json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"}).encode()
)


class _OAuthRecorder(_Recorder):
    """Also AUTH XOAUTH2, each token checked at the identity provider's introspection."""

    def __init__(self, server: SmtpServer, introspection_url: str) -> None:
        super().__init__(server)
        parts = urllib.parse.urlsplit(introspection_url)
        self._auth = (
            urllib.parse.unquote(parts.username or ""),
            urllib.parse.unquote(parts.password or ""),
        )
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self._url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    async def _token_owner(self, token: str) -> str | None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self._url, data={"token": token}, auth=self._auth)
        answer = response.json() if response.status_code == 200 else {}
        active = answer.get("active") is True
        return str(answer.get("username")) if active else None

    # aiosmtpd finds a mechanism by its method name: auth_<MECHANISM>.
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob = args[1].encode()
        else:
            challenge = await server.challenge_auth("")
            if not isinstance(challenge, bytes):
                return AuthResult(success=False, handled=True)
            blob = base64.b64encode(challenge)
        try:
            fields = dict(
                part.split("=", 1)
                for part in base64.b64decode(blob, validate=True).decode().split("\x01")
                if "=" in part
            )
        except (binascii.Error, UnicodeDecodeError, ValueError):
            await server.push("501 5.5.2 Can't decode XOAUTH2")
            return AuthResult(success=False, handled=True)
        user = fields.get("user", "")
        scheme, _, token = fields.get("auth", "").partition(" ")
        owner = await self._token_owner(token) if scheme.lower() == "bearer" else None
        ok = owner is not None and owner.lower() == user.lower()
        self.server.record(AuthAttempt("XOAUTH2", user, ok))
        if ok:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        await server.challenge_auth(_XOAUTH2_ERROR, encode_to_b64=False)
        return AuthResult(success=False, handled=False)  # not handled: aiosmtpd sends the 535


@contextmanager
def running_smtp_server(
    username: str = "smtp-user@example.com",
    password: str | None = None,
    *,
    tls_files: tuple[str, str] | None = None,
    offer_auth: bool = True,
    introspection_url: str | None = None,
) -> Iterator[SmtpServer]:
    """Start aiosmtpd on a free loopback port; stop it on exit. ``tls_files`` (certificate
    chain, key): offer STARTTLS and require it before AUTH and mail. ``offer_auth=False``
    (without TLS): no AUTH in EHLO, as a server that allows logins only over TLS.
    ``introspection_url`` (``http://user:password@host:port/path``): also accept XOAUTH2
    tokens it calls active."""
    server = SmtpServer(
        host=LOOPBACK,
        port=free_port(),
        username=username,
        password=password or f"smtp-pass-{uuid.uuid4().hex[:12]}",
        starttls=tls_files is not None,
    )
    tls_context = None
    if tls_files is not None:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(*tls_files)
    handler = (
        _OAuthRecorder(server, introspection_url)
        if introspection_url is not None
        else _Recorder(server)
    )
    controller = Controller(
        handler,
        hostname=LOOPBACK,
        port=server.port,
        authenticator=_Authenticator(server),
        auth_require_tls=tls_files is not None or not offer_auth,
        require_starttls=tls_files is not None,
        tls_context=tls_context,
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
