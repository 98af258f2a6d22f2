"""Enumerations stored as short strings with a CHECK constraint (easy to extend later)."""

from __future__ import annotations

import enum

from sqlalchemy import Enum


class Plan(enum.StrEnum):
    ESSENTIAL = "ESSENTIAL"
    ADVANCED = "ADVANCED"
    PROFESSIONAL = "PROFESSIONAL"
    POWER = "POWER"
    ENTERPRISE = "ENTERPRISE"


class Role(enum.StrEnum):
    ADMIN = "ADMIN"
    REGULAR = "REGULAR"


class ConnectionSecurity(enum.StrEnum):
    SSL = "SSL"
    STARTTLS = "STARTTLS"
    NONE = "NONE"


class AuthMethod(enum.StrEnum):
    """How an account logs in to its mail servers."""

    PASSWORD = "PASSWORD"  # IMAP/SMTP passwords (addMailAccount)
    GOOGLE = "GOOGLE"  # OAuth2 sign-in, XOAUTH2 with the access token
    MICROSOFT = "MICROSOFT"
    GENERIC = "GENERIC"  # the OAuth2 provider configured in the settings


class OAuthProvider(enum.StrEnum):
    """The OAuth2 sign-ins an account can be connected with (AuthMethod without PASSWORD)."""

    GOOGLE = "GOOGLE"
    MICROSOFT = "MICROSOFT"
    GENERIC = "GENERIC"

    @property
    def auth_method(self) -> AuthMethod:
        return AuthMethod(self.value)


class Sharing(enum.StrEnum):
    PRIVATE = "PRIVATE"
    SHARED = "SHARED"


class PastSync(enum.StrEnum):
    NONE = "NONE"
    ONE_MONTH = "ONE_MONTH"
    THREE_MONTHS = "THREE_MONTHS"
    SIX_MONTHS = "SIX_MONTHS"
    ONE_YEAR = "ONE_YEAR"
    ALL = "ALL"


class AccountStatus(enum.StrEnum):
    READY = "READY"
    SYNCING = "SYNCING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    AUTH_FAILED = "AUTH_FAILED"
    ERROR = "ERROR"


class RealtimeMode(enum.StrEnum):
    IDLE = "IDLE"  # a worker holds an IMAP IDLE connection on INBOX: new mail within a second
    POLLING = "POLLING"  # synced at the interval (no IDLE on the server, or not watched now)


class PauseReason(enum.StrEnum):
    USER = "USER"  # pauseSync
    PLAN = "PLAN"  # the company's plan now allows fewer accounts


class FolderRole(enum.StrEnum):
    INBOX = "INBOX"
    SENT = "SENT"
    DRAFTS = "DRAFTS"
    TRASH = "TRASH"
    JUNK = "JUNK"
    ARCHIVE = "ARCHIVE"
    ALL = "ALL"
    OTHER = "OTHER"


class SendStatus(enum.StrEnum):
    """What the user sees of an outgoing message."""

    QUEUED = "QUEUED"  # stored; the worker has not finished with it
    SENT = "SENT"  # the SMTP server accepted it
    FAILED = "FAILED"  # given up on; ``error`` says why


class SentCopy(enum.StrEnum):
    """The copy of a sent message in the account's Sent folder."""

    PENDING = "PENDING"  # not handled yet (the message is not sent, or the append is due)
    APPENDED = "APPENDED"  # appended over IMAP (or found there already)
    BY_SERVER = "BY_SERVER"  # the provider files sent mail itself (e.g. Gmail)
    NO_FOLDER = "NO_FOLDER"  # the account has no Sent folder
    FAILED = "FAILED"  # the append failed; the message itself was sent


def db_enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
    )
