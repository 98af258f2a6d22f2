"""A thin, typed layer over aioimaplib: connect (SSL, STARTTLS or plain), log in, list.

Every failure leaves this module as a :class:`~core.errors.ServiceError` with the code a
user can act on (INVALID_CREDENTIALS, SERVER_UNREACHABLE, TLS_FAILED, HOST_NOT_ALLOWED).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aioimaplib

from core.errors import ErrorCode, ServiceError
from core.mail.folders import folder_role
from core.mail.hosts import resolve_mail_host
from core.mail.protocol import LinearIMAP4ClientProtocol
from core.mail.server import MailConnectOptions, ServerLogin
from core.mail.tls import client_tls_context
from core.mail.utf7 import decode_mailbox_name, encode_mailbox_name
from core.models.enums import ConnectionSecurity, FolderRole


class _RedactLogins(logging.Filter):
    """aioimaplib logs every line it sends at DEBUG, and its scrubbing misses passwords that
    need quoting: whatever the log level, a LOGIN/AUTHENTICATE line is never logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "LOGIN" in text.upper() or "AUTHENTICATE" in text.upper():
            record.msg, record.args = "(a login command, redacted)", ()
        return True


for _name in ("aioimaplib", "aioimaplib.aioimaplib"):
    logging.getLogger(_name).addFilter(_RedactLogins())
# Its INFO lines echo server responses it ignored (one per EXISTS after an APPEND): chatter,
# and server text in our logs. Problems still come through as warnings.
logging.getLogger("aioimaplib").setLevel(logging.WARNING)

_LIST_LINE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.*)$')
_LITERAL = re.compile(rb"^\{(\d+)\+?\}$")


@dataclass(frozen=True)
class Mailbox:
    name: str  # decoded from modified UTF-7
    delimiter: str | None
    attributes: tuple[str, ...]
    role: FolderRole


class _DirectIMAP4(aioimaplib.IMAP4):
    """aioimaplib's client, connected to an address checked beforehand.

    ``host`` stays the name for TLS verification; ``address`` is where we connect, so
    a DNS answer cannot change between the private-address check and the connection.
    """

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._address = address
        super().__init__(host=host, port=port, timeout=timeout, ssl_context=ssl_context)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: object = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = LinearIMAP4ClientProtocol(running, None)
        self._client_task = running.create_task(
            running.create_connection(
                lambda: self.protocol,
                self._address,
                port,
                ssl=ssl_context,
                server_hostname=host if ssl_context else None,
            )
        )


class ImapConnection:
    """An authenticated IMAP session."""

    def __init__(self, client: aioimaplib.IMAP4, login: ServerLogin) -> None:
        self.client = client
        self.login = login

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(c.upper() for c in self.client.protocol.capabilities)

    async def list_mailboxes(self) -> list[Mailbox]:
        """Every selectable mailbox, with its role."""
        if "SPECIAL-USE" in self.capabilities:
            response = await self.client.list('""', '"*" RETURN (SPECIAL-USE)')
        else:
            response = await self.client.list('""', '"*"')
        if response.result != "OK":
            raise ServiceError(
                ErrorCode.SERVER_UNREACHABLE,
                f"{self.login.host} refused to list its folders.",
            )
        return parse_list_response(response.lines)

    async def append_unless_present(
        self, mailbox: str, raw: bytes, message_id: str, when: datetime
    ) -> bool:
        """APPEND ``raw`` as read (``\\Seen``) to ``mailbox`` unless a message with
        ``message_id`` (no brackets) is there already, e.g. from an attempt that was cut
        short after its APPEND; True when appended now. Errors are ServiceErrors."""
        quoted = '"' + encode_mailbox_name(mailbox).replace("\\", "\\\\").replace('"', '\\"') + '"'
        selected = await self.client.select(quoted)
        if selected.result != "OK":
            raise ServiceError(ErrorCode.UNKNOWN_LABEL, f"{self.login.host} has no {mailbox}.")
        found = await self.client.uid_search(f'HEADER Message-ID "<{message_id}>"', charset=None)
        lines = [bytes(line) for line in found.lines[:-1] if isinstance(line, bytes | bytearray)]
        if found.result == "OK" and any(word.isdigit() for line in lines for word in line.split()):
            return False
        appended = await self.client.append(raw, mailbox=quoted, flags="\\Seen", date=when)
        if appended.result != "OK":
            raise ServiceError(
                ErrorCode.SERVER_UNREACHABLE,
                f"{self.login.host} refused to store a copy in {mailbox}.",
            )
        return True

    async def logout(self) -> None:
        with suppress(Exception):  # a goodbye that fails changes nothing for the caller
            await asyncio.wait_for(self.client.logout(), 2)

    def abort(self) -> None:
        """Close the connection now, without a goodbye (e.g. in the middle of IDLE)."""
        _close(self.client)


def parse_list_response(lines: list[bytes | bytearray]) -> list[Mailbox]:
    mailboxes: list[Mailbox] = []
    index = 0
    while index < len(lines):
        match = _LIST_LINE.match(bytes(lines[index]))
        index += 1
        if match is None:
            continue
        raw_name = match.group("name")
        literal = _LITERAL.match(raw_name)
        if literal and index < len(lines):
            raw_name = bytes(lines[index])
            index += 1
        name = decode_mailbox_name(_unquote(raw_name.decode("utf-8", "replace")))
        attributes = tuple(match.group("attrs").decode().split())
        if any(a.lower() in ("\\noselect", "\\nonexistent") for a in attributes):
            continue
        delim_raw = match.group("delim").decode()
        delimiter = None if delim_raw == "NIL" else _unquote(delim_raw)
        mailboxes.append(
            Mailbox(name, delimiter, attributes, folder_role(name, delimiter, attributes))
        )
    return mailboxes


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


@asynccontextmanager
async def imap_session(
    login: ServerLogin, options: MailConnectOptions
) -> AsyncIterator[ImapConnection]:
    """Connect and log in within ``options.timeout`` seconds; log out on exit."""
    connection = await _connect_and_login(login, options)
    try:
        yield connection
    finally:
        await connection.logout()


async def open_connection(login: ServerLogin, options: MailConnectOptions) -> ImapConnection:
    """:func:`imap_session` for a connection the caller keeps open and closes itself
    (``logout`` or ``abort``), such as an IDLE watcher's."""
    return await _connect_and_login(login, options)


async def _connect_and_login(login: ServerLogin, options: MailConnectOptions) -> ImapConnection:
    host = login.host
    tls = (
        client_tls_context(options.tls_ca_file)
        if login.security is not ConnectionSecurity.NONE
        else None
    )
    implicit_tls = tls if login.security is ConnectionSecurity.SSL else None
    client: aioimaplib.IMAP4 | None = None
    # Before connecting: getting a token may mean a refresh at the provider.
    token = await login.access_token() if login.uses_xoauth2 else None
    try:
        async with asyncio.timeout(options.timeout):
            address = await resolve_mail_host(
                host, login.port, allow_private=options.allow_private_hosts, ports=options.ports
            )
            client = _DirectIMAP4(host, address, login.port, options.timeout, implicit_tls)
            await _greeting(client, login, options.greeting_timeout or options.timeout)
            if login.security is ConnectionSecurity.STARTTLS and tls is not None:
                await _starttls(client, host, tls)
            if token is not None:
                response = await _xoauth2(client, login, token)
            else:
                response = await _password_login(client, login)
            if not any(b"CAPABILITY" in bytes(line) for line in response.lines):
                # Servers announce more once logged in; most say so in LOGIN's OK already.
                await client.protocol.capability()
            return ImapConnection(client, login)
    except ServiceError:
        _close(client)
        raise
    except ssl.SSLError as exc:
        _close(client)
        raise ServiceError(
            ErrorCode.TLS_FAILED,
            f"The TLS handshake with {host} failed ({_ssl_reason(exc)}).",
            "security",
        ) from None
    except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
        _close(client)
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE,
            f"Could not reach an IMAP server at {host}:{login.port} ({_network_reason(exc)}).",
            "host",
        ) from None


async def _greeting(client: aioimaplib.IMAP4, login: ServerLogin, seconds: float) -> None:
    """Connected (TCP, and TLS for SSL), then the server's greeting within ``seconds``: a
    server that accepts connections and never speaks is named as such."""
    await client._client_task  # its failures are the connection's (refused, TLS, ...)
    try:
        async with asyncio.timeout(seconds):
            await client.wait_hello_from_server()
    except TimeoutError:
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE,
            f"{login.host}:{login.port} accepted the connection but sent no IMAP greeting "
            f"within {seconds:g} s.",
            "host",
        ) from None


async def _password_login(client: aioimaplib.IMAP4, login: ServerLogin) -> Any:
    if "LOGINDISABLED" in {c.upper() for c in client.protocol.capabilities}:
        raise ServiceError(
            ErrorCode.TLS_FAILED,
            f"{login.host} accepts logins only over TLS: choose SSL or STARTTLS.",
            "security",
        )
    # aioimaplib quotes the password but sends the user name as is.
    response = await client.login(aioimaplib.quoted(login.username), login.password)
    if response.result != "OK":
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS,
            f"{login.host} refused the login for {login.username}.",
            "password",
        )
    return response


async def _xoauth2(client: aioimaplib.IMAP4, login: ServerLogin, token: str) -> Any:
    """AUTHENTICATE XOAUTH2; a refused token is retried once with a newer one, if any
    (the provider may have ended it early, e.g. after a password change)."""
    if "AUTH=XOAUTH2" not in {c.upper() for c in client.protocol.capabilities}:
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS, f"{login.host} does not offer XOAUTH2 sign-in."
        )
    response = await client.xoauth2(login.username, token)
    if response.result != "OK":
        newer = await login.token_after_refusal(token)
        if newer is not None and newer != token:
            response = await client.xoauth2(login.username, newer)
    if response.result != "OK":
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS,
            f"{login.host} refused the sign-in for {login.username}; reconnect the account.",
        )
    return response


async def _starttls(client: aioimaplib.IMAP4, host: str, context: ssl.SSLContext) -> None:
    protocol = client.protocol
    if "STARTTLS" not in {c.upper() for c in protocol.capabilities}:
        raise ServiceError(ErrorCode.TLS_FAILED, f"{host} does not offer STARTTLS.", "security")
    response = await protocol.execute(
        aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    )
    if response.result != "OK":
        raise ServiceError(ErrorCode.TLS_FAILED, f"{host} refused STARTTLS.", "security")
    loop = asyncio.get_running_loop()
    protocol.transport = await loop.start_tls(
        protocol.transport, protocol, context, server_hostname=host
    )
    await protocol.capability()  # RFC 3501: capabilities before TLS must be discarded


def _close(client: aioimaplib.IMAP4 | None) -> None:
    if client is None:
        return
    transport = client.protocol.transport
    if transport is not None:
        transport.close()
    client._client_task.cancel()


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or "certificate not trusted"
    return exc.reason or "handshake error"


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, aioimaplib.AioImapException):
        return "unexpected answer"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else "error"
