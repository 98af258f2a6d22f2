from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import ErrorCode, ServiceError
from core.models.enums import ConnectionSecurity

# IMAP quoted strings and SMTP AUTH lines end at CR/LF: one inside a user name or password
# would end the command and start another of the user's choosing.
_LINE_BREAKING = frozenset("\r\n\x00")


@dataclass(frozen=True)
class ServerLogin:
    """Where and how to log in to a mail server. ``repr`` never shows the password.

    Whatever its source (what a user typed, or a row), a login with CR, LF or NUL in its
    host, user name or password is never built: INVALID_INPUT for that field.
    """

    host: str
    port: int
    security: ConnectionSecurity
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("host", "username", "password"):
            if _LINE_BREAKING.intersection(getattr(self, name)):
                raise ServiceError(
                    ErrorCode.INVALID_INPUT,
                    f"The {name} may not contain line breaks or NUL characters.",
                    name,
                )


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
