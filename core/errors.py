"""Expected failures of the service, reported to users as ``userErrors``."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    SYNC_NOT_IN_PLAN = "SYNC_NOT_IN_PLAN"
    PLAN_LIMIT_REACHED = "PLAN_LIMIT_REACHED"
    DUPLICATE_ACCOUNT = "DUPLICATE_ACCOUNT"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"
    TLS_FAILED = "TLS_FAILED"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    UNKNOWN_LABEL = "UNKNOWN_LABEL"
    ACCOUNT_NOT_READY = "ACCOUNT_NOT_READY"
    NO_DEFAULT_ACCOUNT = "NO_DEFAULT_ACCOUNT"
    ACCOUNT_NOT_SENDABLE = "ACCOUNT_NOT_SENDABLE"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"  # no client id/secret for it
    ACCESS_DENIED = "ACCESS_DENIED"  # the user (or their admin) refused the sign-in
    INVALID_STATE = "INVALID_STATE"  # a sign-in's state unknown, expired, used or not yours
    OAUTH_FAILED = "OAUTH_FAILED"  # the provider refused the code or sent no usable tokens
    ACCOUNT_MISMATCH = "ACCOUNT_MISMATCH"  # a reconnect signed in as another mailbox


class ServiceError(Exception):
    """A failure the user can act on. ``message`` is shown as is: never put a secret in it."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def at(self, prefix: str) -> ServiceError:
        """The same error with its field nested under ``prefix`` (e.g. ``imap.password``)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return ServiceError(self.code, self.message, field)

    def for_field(self, field: str | None) -> ServiceError:
        """The same error reported against another input field."""
        return ServiceError(self.code, self.message, field)
