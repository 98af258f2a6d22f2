"""ORM models. Relationships are ``lazy="raise"``: load them explicitly."""

from core.models.account import MailAccount
from core.models.base import Base
from core.models.company import Company
from core.models.enums import (
    AccountStatus,
    AuthMethod,
    ConnectionSecurity,
    FolderRole,
    OAuthProvider,
    PastSync,
    PauseReason,
    Plan,
    RealtimeMode,
    Role,
    SendStatus,
    SentCopy,
    Sharing,
)
from core.models.folder import Folder, FolderChange
from core.models.instance import InstanceSecret
from core.models.message import Message
from core.models.oauth import OAuthGrant
from core.models.outgoing import OutgoingMessage
from core.models.thread import ThreadKey
from core.models.user import ApiToken, User
from core.models.watcher import WatcherLease
from core.models.write_back import PendingMove

__all__ = [
    "AccountStatus",
    "ApiToken",
    "AuthMethod",
    "Base",
    "Company",
    "ConnectionSecurity",
    "Folder",
    "FolderChange",
    "FolderRole",
    "InstanceSecret",
    "MailAccount",
    "Message",
    "OAuthGrant",
    "OAuthProvider",
    "OutgoingMessage",
    "PastSync",
    "PauseReason",
    "PendingMove",
    "Plan",
    "RealtimeMode",
    "Role",
    "SendStatus",
    "SentCopy",
    "Sharing",
    "ThreadKey",
    "User",
    "WatcherLease",
]
