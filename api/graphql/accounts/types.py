from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from api.graphql.context import Info
from api.graphql.enums import (
    AccountStatus,
    AuthMethod,
    ConnectionSecurity,
    FolderRole,
    PastSync,
    RealtimeMode,
    Sharing,
)
from api.graphql.errors import UserError
from api.graphql.identity.types import User
from core import models


@strawberry.type(description="Where the account logs in. Never carries the password.")
class ServerSettings:
    host: str
    port: int
    security: ConnectionSecurity
    username: str = strawberry.field(
        description="Empty for an SMTP relay that takes mail without a login."
    )


@strawberry.type
class Folder:
    id: strawberry.ID
    name: str = strawberry.field(description='The IMAP name, e.g. "INBOX", "[Gmail]/Sent Mail".')
    role: FolderRole
    selected: bool
    message_count: int
    unread_count: int

    @classmethod
    def from_row(cls, row: models.Folder) -> Folder:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            role=row.role,
            selected=row.selected,
            message_count=row.message_count,
            unread_count=row.unread_count,
        )


@strawberry.type
class MailAccount:
    id: strawberry.ID
    email_address: str
    display_name: str | None
    status: AccountStatus
    sharing: Sharing
    labels: list[str] = strawberry.field(
        description="The folders chosen for sync; empty until startSync."
    )
    past_sync: PastSync | None
    auth_method: AuthMethod = strawberry.field(
        description="PASSWORD, or the OAuth2 provider it signs in with (XOAUTH2)."
    )
    imap: ServerSettings
    smtp: ServerSettings | None
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime
    account_id: strawberry.Private[uuid.UUID]
    owner_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.MailAccount) -> MailAccount:
        smtp = None
        if row.smtp_host and row.smtp_port and row.smtp_security:
            smtp = ServerSettings(
                host=row.smtp_host,
                port=row.smtp_port,
                security=row.smtp_security,
                username=row.smtp_username or "",
            )
        return cls(
            id=strawberry.ID(str(row.id)),
            email_address=row.email_address,
            display_name=row.display_name,
            status=row.status,
            sharing=row.sharing,
            labels=list(row.labels),
            past_sync=row.past_sync,
            auth_method=row.auth_method,
            imap=ServerSettings(
                host=row.imap_host,
                port=row.imap_port,
                security=row.imap_security,
                username=row.imap_username,
            ),
            smtp=smtp,
            last_synced_at=row.last_synced_at,
            last_error=row.last_error,
            created_at=row.created_at,
            account_id=row.id,
            owner_id=row.owner_id,
        )

    @strawberry.field
    async def owner(self, info: Info) -> User:
        row = await info.context.loaders.user.load(self.owner_id)
        assert row is not None  # mail_accounts.owner_id is a foreign key
        return User.from_row(row)

    @strawberry.field
    async def is_default(self, info: Info) -> bool:
        row = await info.context.loaders.user.load(self.owner_id)
        return row is not None and row.default_account_id == self.account_id

    @strawberry.field(description="Every folder on the server; `selected` marks the synced ones.")
    async def folders(self, info: Info) -> list[Folder]:
        rows = await info.context.loaders.folders.load(self.account_id)
        return [Folder.from_row(r) for r in rows]

    @strawberry.field(
        description="IDLE: a worker holds an IMAP IDLE connection on INBOX, so new mail "
        "arrives within a second. POLLING: synced at the interval (the server offers no "
        "IDLE, or no watcher holds it right now)."
    )
    async def realtime(self, info: Info) -> RealtimeMode:
        return await info.context.loaders.realtime.load(self.account_id)

    @strawberry.field(description="Messages stored from the selected folders.")
    async def message_count(self, info: Info) -> int:
        rows = await info.context.loaders.folders.load(self.account_id)
        return sum(r.message_count for r in rows if r.selected)

    @strawberry.field(
        description="Messages of a large sync whose words are not in the search index yet "
        "(it fills right after the sync run that stored them): search finds them all the "
        "same, only more slowly. 0 once the index has caught up."
    )
    async def search_backlog(self, info: Info) -> int:
        return await info.context.loaders.search_backlog.load(self.account_id)


@strawberry.type
class MailAccountPayload:
    account: MailAccount | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RemoveMailAccountPayload:
    removed_account_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SetDefaultAccountPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
