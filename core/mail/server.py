from __future__ import annotations

from dataclasses import dataclass, field

from core.models.enums import ConnectionSecurity


@dataclass(frozen=True)
class ServerLogin:
    """Where and how to log in to a mail server. ``repr`` never shows the password."""

    host: str
    port: int
    security: ConnectionSecurity
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SmtpRelay:
    """An SMTP server that takes mail without a login (a relay that trusts the network)."""

    host: str
    port: int
    security: ConnectionSecurity


# Where an account sends from: a server to log in to, or a relay.
SmtpServer = ServerLogin | SmtpRelay


@dataclass(frozen=True)
class MailConnectOptions:
    allow_private_hosts: bool
    timeout: float
    tls_ca_file: str | None
