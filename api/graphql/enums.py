"""The domain's enums, registered with Strawberry under the contract's names.

``strawberry.enum`` marks the class itself, so resolvers use the domain enums directly.
"""

from __future__ import annotations

import strawberry

from core.errors import ErrorCode
from core.models import (
    AccountStatus,
    AuthMethod,
    ConnectionSecurity,
    FolderRole,
    OAuthProvider,
    PastSync,
    Plan,
    RealtimeMode,
    Role,
    SendStatus,
    Sharing,
)

for _enum in (
    Plan,
    Role,
    ConnectionSecurity,
    Sharing,
    PastSync,
    AccountStatus,
    AuthMethod,
    OAuthProvider,
    FolderRole,
    SendStatus,
    ErrorCode,
    RealtimeMode,
):
    strawberry.enum(_enum)

__all__ = [
    "AccountStatus",
    "AuthMethod",
    "ConnectionSecurity",
    "ErrorCode",
    "FolderRole",
    "OAuthProvider",
    "PastSync",
    "Plan",
    "RealtimeMode",
    "Role",
    "SendStatus",
    "Sharing",
]
