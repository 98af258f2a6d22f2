from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import ErrorCode, ServiceError
from core.mail.protocol import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LITERAL_BYTES
from core.models.enums import ConnectionSecurity

DEFAULT_MAX_FOLDERS = 1000

# IMAP quoted strings and SMTP AUTH lines end at CR/LF: one inside a user name or password
# would end the command and start another of the user's choosing.
_LINE_BREAKING = frozenset("\r\n\x00")


class LoginMethod(enum.StrEnum):
    PASSWORD = "PASSWORD"  # IMAP LOGIN, SMTP AUTH PLAIN/LOGIN
    XOAUTH2 = "XOAUTH2"  # an OAuth2 access token (Google, Microsoft and others)


class AccessTokens(Protocol):
    """Where an XOAUTH2 login gets its access token (may refresh it over the network)."""

    async def current(self) -> str:
        """A token that should work now."""
        ...

    async def after_refusal(self, refused: str) -> str | None:
        """The server refused ``refused``: a newer token to try once, or None."""
        ...


@dataclass(frozen=True)
class ServerLogin:
    """Where and how to log in to a mail server. ``repr`` never shows a secret.

    ``password`` is the password, or for XOAUTH2 a fixed access token when ``tokens`` is
    None (a token just received, e.g. while connecting an account).

    Whatever its source (what a user typed, or a row), a login with CR, LF or NUL in its
    host, user name or password is never built: INVALID_INPUT for that field.
    """

    host: str
    port: int
    security: ConnectionSecurity
    username: str
    password: str = field(default="", repr=False)
    method: LoginMethod = LoginMethod.PASSWORD
    tokens: AccessTokens | None = field(default=None, repr=False, compare=False)

    @property
    def uses_xoauth2(self) -> bool:
        return self.method is LoginMethod.XOAUTH2

    async def access_token(self) -> str:
        token = await self.tokens.current() if self.tokens is not None else self.password
        return _usable_token(token)

    async def token_after_refusal(self, refused: str) -> str | None:
        token = await self.tokens.after_refusal(refused) if self.tokens is not None else None
        return _usable_token(token) if token is not None else None

    def __post_init__(self) -> None:
        for name in ("host", "username", "password"):
            if _LINE_BREAKING.intersection(getattr(self, name)):
                raise ServiceError(
                    ErrorCode.INVALID_INPUT,
                    f"The {name} may not contain line breaks or NUL characters.",
                    name,
                )


def _usable_token(token: str) -> str:
    """A bearer token goes into the XOAUTH2 string between \\x01 separators, as ASCII."""
    if not token or not token.isascii() or any(c < " " or c == "\x7f" for c in token):
        raise ServiceError(
            ErrorCode.INVALID_CREDENTIALS, "The sign-in provider sent an unusable access token."
        )
    return token


@dataclass(frozen=True)
class SmtpRelay:
    """An SMTP server that takes mail without a login (a relay that trusts the network)."""

    host: str
    port: int
    security: ConnectionSecurity

    def __post_init__(self) -> None:
        if _LINE_BREAKING.intersection(self.host):  # as for a login, whatever the source
            raise ServiceError(
                ErrorCode.INVALID_INPUT,
                "The host may not contain line breaks or NUL characters.",
                "host",
            )


# Where an account sends from: a server to log in to, or a relay.
SmtpServer = ServerLogin | SmtpRelay


@dataclass(frozen=True)
class MailConnectOptions:
    allow_private_hosts: bool
    timeout: float
    tls_ca_file: str | None
    ports: frozenset[int] | None = None  # the ports a mail server may be on (None: any)
    greeting_timeout: float | None = None  # for the IMAP greeting (None: ``timeout``)
    max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES  # a larger IMAP literal is refused
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # and so is a longer line outside literals
    max_folders: int = DEFAULT_MAX_FOLDERS  # mailboxes kept from a LIST; the rest ignored
