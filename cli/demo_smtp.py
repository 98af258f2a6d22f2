"""The demo SMTP server of `mailsync dev`: AUTH with the demo login, and every message it
accepts is delivered (IMAP APPEND) into the demo mailbox's INBOX, whoever it is addressed to,
so mail sent from the demo account shows up in the unified inbox after the next sync."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class DemoServerError(Exception):
    """The demo server did not start; the message is one line for the user."""


def _append_to_inbox(imap_port: int, username: str, password: str, message: bytes) -> None:
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=10) as imap:
        imap.login(username, password)
        status, _ = imap.append("INBOX", "", None, message)
        if status != "OK":
            raise imaplib.IMAP4.error(f"APPEND answered {status}")


class _Deliver:
    """aiosmtpd handler: DATA goes into the demo IMAP mailbox."""

    def __init__(self, imap_port: int, username: str, password: str) -> None:
        self.imap_port, self.username, self.password = imap_port, username, password

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        try:
            await asyncio.to_thread(
                _append_to_inbox, self.imap_port, self.username, self.password, content
            )
        except (OSError, imaplib.IMAP4.error):
            return "451 4.3.0 The demo mailbox did not take the message; try again"
        return "250 2.0.0 Delivered to the demo mailbox"


class _DemoLogin:
    """AUTH PLAIN/LOGIN with the demo mailbox's own login, and no other."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.username
            and data.password == self.password
        )
        return AuthResult(success=ok)


@contextlib.contextmanager
def demo_smtp_server(port: int, imap_port: int, username: str, password: str) -> Iterator[int]:
    """On 127.0.0.1:``port``, plain SMTP (loopback only) that requires the demo login."""
    # aiosmtpd warns, rightly, that AUTH without TLS exposes the password (on every
    # connection); the demo's login is public and the server listens on loopback only.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    controller = Controller(
        _Deliver(imap_port, username, password),
        hostname="127.0.0.1",
        port=port,
        authenticator=_DemoLogin(username, password),
        auth_required=True,
        auth_require_tls=False,
        data_size_limit=MAX_MESSAGE_BYTES,
    )
    try:
        controller.start()
    except OSError as exc:  # the port was taken after `mailsync dev` checked it
        raise DemoServerError(
            f"the demo SMTP server could not listen on port {port}: {exc}"
        ) from None
    try:
        yield port
    finally:
        controller.stop()
