"""SMTP login checks with aiosmtplib (SSL, STARTTLS or plain)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiosmtplib

from core.errors import ErrorCode, ServiceError
from core.mail.hosts import resolve_mail_host
from core.mail.server import MailConnectOptions, ServerLogin
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


@asynccontextmanager
async def smtp_session(
    login: ServerLogin, options: MailConnectOptions
) -> AsyncIterator[aiosmtplib.SMTP]:
    """An SMTP connection that has logged in; the errors are ServiceErrors."""
    host = login.host
    client: aiosmtplib.SMTP | None = None
    # Before connecting: getting a token may mean a refresh at the provider.
    token = await login.access_token() if login.uses_xoauth2 else None
    try:
        async with asyncio.timeout(options.timeout):
            address = await resolve_mail_host(
                host, login.port, allow_private=options.allow_private_hosts, ports=options.ports
            )
            sock = await _connected_socket(address, login.port)
            client = aiosmtplib.SMTP(
                hostname=host,
                sock=sock,
                use_tls=login.security is ConnectionSecurity.SSL,
                start_tls=login.security is ConnectionSecurity.STARTTLS,
                tls_context=client_tls_context(options.tls_ca_file),
                timeout=options.timeout,
            )
            await client.connect()
            if token is not None:
                await _xoauth2(client, login, token)
            else:
                await client.login(login.username, login.password)
    except ServiceError:
        await _quit(client)
        raise
    except aiosmtplib.SMTPAuthenticationError:
        await _quit(client)
        if login.uses_xoauth2:
            raise ServiceError(
                ErrorCode.INVALID_CREDENTIALS,
                f"{host} refused the SMTP sign-in for {login.username}; reconnect the account.",
            ) from None
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS,
            f"{host} refused the SMTP login for {login.username}.",
            "password",
        ) from None
    except aiosmtplib.SMTPException as exc:
        await _quit(client)
        if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) or "TLS" in str(exc):
            raise ServiceError(
                ErrorCode.TLS_FAILED, f"The TLS handshake with {host} failed.", "security"
            ) from None
        if "AUTH" in str(exc).upper() and "not supported" in str(exc).lower():
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                f"{host} offers no login on this connection; try SSL or STARTTLS.",
                "security",
            ) from None
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE,
            f"Could not reach an SMTP server at {host}:{login.port}.",
            "host",
        ) from None
    except ssl.SSLError:
        await _quit(client)
        raise ServiceError(
            ErrorCode.TLS_FAILED, f"The TLS handshake with {host} failed.", "security"
        ) from None
    except (TimeoutError, OSError):
        await _quit(client)
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE,
            f"Could not reach an SMTP server at {host}:{login.port}.",
            "host",
        ) from None
    try:
        yield client
    finally:
        await _quit(client)


async def _xoauth2(client: aiosmtplib.SMTP, login: ServerLogin, token: str) -> None:
    """AUTH XOAUTH2; a refused token is retried once with a newer one, if any."""
    if client.last_ehlo_response is None:
        await client.ehlo()  # the AUTH mechanisms come with the EHLO answer
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


async def _quit(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    with suppress(Exception):  # the session is over either way
        await asyncio.wait_for(client.quit(), 2)
    client.close()
