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
class MailConnectOptions:
    allow_private_hosts: bool
    timeout: float
    tls_ca_file: str | None
