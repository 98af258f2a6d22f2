from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from core.models.enums import ConnectionSecurity


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
        return await self.tokens.current() if self.tokens is not None else self.password

    async def token_after_refusal(self, refused: str) -> str | None:
        return await self.tokens.after_refusal(refused) if self.tokens is not None else None


@dataclass(frozen=True)
class MailConnectOptions:
    allow_private_hosts: bool
    timeout: float
    tls_ca_file: str | None
