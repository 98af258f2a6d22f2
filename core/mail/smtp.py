"""SMTP sessions with aiosmtplib (SSL, STARTTLS or plain; with a login, or a relay without).

Failures are classified by the step that failed and by aiosmtplib's exception types (5.x),
never by the text of a message: the connection (and, with SSL, its handshake), STARTTLS,
then AUTH, whose absence is read from the server's EHLO extensions before trying it.
An OAuth2 login uses AUTH XOAUTH2 with its access token (fetched before connecting).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiosmtplib

from core.errors import ErrorCode, ServiceError
from core.mail.hosts import resolve_mail_host
from core.mail.server import MailConnectOptions, ServerLogin, SmtpServer
from core.mail.tls import client_tls_context
from core.models.enums import ConnectionSecurity


async def _connected_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _unreachable(login: SmtpServer, reason: str | None = None) -> ServiceError:
    detail = f" ({reason})" if reason else ""
    return ServiceError(
        ErrorCode.SERVER_UNREACHABLE,
        f"Could not reach an SMTP server at {login.host}:{login.port}{detail}.",
        "host",
    )


def _tls_failed(login: SmtpServer, exc: BaseException | None) -> ServiceError:
    reason = ""
    if isinstance(exc, ssl.SSLError):
        reason = f" ({exc.reason or type(exc).__name__})"
    return ServiceError(
        ErrorCode.TLS_FAILED, f"The TLS handshake with {login.host} failed{reason}.", "security"
    )


def _ssl_error_in(exc: BaseException) -> ssl.SSLError | None:
    """The SSL error that caused ``exc`` (aiosmtplib wraps a failed SSL connect)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _classify(login: SmtpServer, exc: BaseException, *, in_tls: bool) -> ServiceError:
    """The user's error for a failure of aiosmtplib or the network; ``in_tls``: during
    the TLS handshake (implicit SSL or STARTTLS)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if isinstance(login, ServerLogin) and login.uses_xoauth2:
            return ServiceError(
                ErrorCode.INVALID_CREDENTIALS,
                f"{login.host} refused the SMTP sign-in for {login.username}; "
                "reconnect the account.",
            )
        return ServiceError(
            ErrorCode.INVALID_CREDENTIALS,
            f"{login.host} refused the SMTP login"
            + (f" for {login.username}." if isinstance(login, ServerLogin) else "."),
            "password",
        )
    ssl_error = _ssl_error_in(exc)
    if ssl_error is not None:
        return _tls_failed(login, ssl_error)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return _unreachable(login, "timed out")
    if in_tls and isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return _tls_failed(login, None)  # the server hung up on the handshake
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _unreachable(login, f"it answered {exc.code}")
    return _unreachable(login)


async def _open(client: aiosmtplib.SMTP, login: SmtpServer, token: str | None) -> None:
    """Greeting, STARTTLS when asked for, then AUTH when there is a login (XOAUTH2 with
    ``token`` when there is one)."""
    ssl_connect = login.security is ConnectionSecurity.SSL
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _classify(login, exc, in_tls=ssl_connect) from None
    try:
        await client.ehlo()
        if login.security is ConnectionSecurity.STARTTLS:
            if not client.supports_extension("starttls"):
                raise ServiceError(
                    ErrorCode.TLS_FAILED,
                    f"{login.host} does not offer STARTTLS on port {login.port}; "
                    "choose SSL or NONE.",
                    "security",
                )
            try:
                await client.starttls()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _classify(login, exc, in_tls=True) from None
            await client.ehlo()
        if not isinstance(login, ServerLogin):
            return  # a relay: no login
        if not client.supports_extension("auth"):
            hint = "" if client.get_transport_info("sslcontext") else " try SSL or STARTTLS, or"
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                f"{login.host} offers no login on this connection:{hint} leave the "
                "username and password out if it relays mail without one.",
                "security",
            )
        if token is not None:
            await _xoauth2(client, login, token)
        else:
            await client.login(login.username, login.password)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _classify(login, exc, in_tls=False) from None


async def _xoauth2(client: aiosmtplib.SMTP, login: ServerLogin, token: str) -> None:
    """AUTH XOAUTH2; a refused token is retried once with a newer one, if any (the provider
    may have ended it early, e.g. after a password change)."""
    if "xoauth2" not in client.server_auth_methods:
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS, f"{login.host} does not offer XOAUTH2 sign-in."
        )
    try:
        await client.auth_xoauth2(login.username, token)
    except aiosmtplib.SMTPAuthenticationError:
        newer = await login.token_after_refusal(token)
        if newer is None or newer == token:
            raise
        await client.auth_xoauth2(login.username, newer)


@asynccontextmanager
async def smtp_session(
    login: SmtpServer, options: MailConnectOptions
) -> AsyncIterator[aiosmtplib.SMTP]:
    """An SMTP connection, logged in unless ``login`` is a relay; errors are ServiceErrors."""
    client: aiosmtplib.SMTP | None = None
    # Before connecting: getting a token may mean a refresh at the provider.
    token = None
    if isinstance(login, ServerLogin) and login.uses_xoauth2:
        token = await login.access_token()
    try:
        async with asyncio.timeout(options.timeout):
            address = await resolve_mail_host(
                login.host,
                login.port,
                allow_private=options.allow_private_hosts,
                ports=options.ports,
            )
            try:
                sock = await _connected_socket(address, login.port)
            except OSError as exc:
                raise _classify(login, exc, in_tls=False) from None
            client = aiosmtplib.SMTP(
                hostname=login.host,
                sock=sock,
                use_tls=login.security is ConnectionSecurity.SSL,
                start_tls=False,  # _open does STARTTLS itself, to tell its failures apart
                tls_context=client_tls_context(options.tls_ca_file),
                timeout=options.timeout,
            )
            await _open(client, login, token)
    except ServiceError:
        await _quit(client)
        raise
    except TimeoutError:
        await _quit(client)
        raise _unreachable(login, "timed out") from None
    try:
        yield client
    finally:
        await _quit(client)


async def _quit(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    with suppress(Exception):  # the session is over either way
        await asyncio.wait_for(client.quit(), 2)
    client.close()
