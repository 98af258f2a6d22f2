"""ORM models. Relationships are ``lazy="raise"``: load them explicitly."""

from core.models.account import MailAccount
from core.models.base import Base
from core.models.company import Company
from core.models.enums import (
    AccountStatus,
    ConnectionSecurity,
    FolderRole,
    PastSync,
    PauseReason,
    Plan,
    Role,
    Sharing,
)
from core.models.folder import Folder
from core.models.message import Message
from core.models.thread import ThreadKey
from core.models.user import ApiToken, User

__all__ = [
    "AccountStatus",
    "ApiToken",
    "Base",
    "Company",
    "ConnectionSecurity",
    "Folder",
    "FolderRole",
    "MailAccount",
    "Message",
    "PastSync",
    "PauseReason",
    "Plan",
    "Role",
    "Sharing",
    "ThreadKey",
    "User",
]
