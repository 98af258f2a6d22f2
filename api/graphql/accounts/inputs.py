from __future__ import annotations

import strawberry

from api.graphql.enums import ConnectionSecurity, Sharing
from core.accounts.inputs import NewAccount, ServerFields
from core.accounts.servers import ServerChanges


@strawberry.input
class ServerInput:
    host: str
    password: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Required for IMAP. SMTP without username and password: a relay that "
        "takes mail without a login.",
    )
    port: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Default by security: IMAP 993/143, SMTP 465/587.",
    )
    security: ConnectionSecurity | None = ConnectionSecurity.SSL
    username: str | None = strawberry.field(
        default=strawberry.UNSET, description="Default: the email address."
    )

    def to_domain(self) -> ServerFields:
        return ServerFields(
            host=self.host,
            password=self.password or None,
            port=None if self.port is strawberry.UNSET else self.port,
            security=self.security or ConnectionSecurity.SSL,
            username=self.username or None,
        )


@strawberry.input
class AddMailAccountInput:
    email_address: str
    imap: ServerInput
    display_name: str | None = strawberry.UNSET
    smtp: ServerInput | None = strawberry.field(
        default=strawberry.UNSET, description="Optional; without it the account cannot send."
    )

    def to_domain(self) -> NewAccount:
        return NewAccount(
            email_address=self.email_address,
            imap=self.imap.to_domain(),
            display_name=self.display_name or None,
            smtp=self.smtp.to_domain() if self.smtp else None,
        )


@strawberry.input
class UpdateMailAccountInput:
    account_id: strawberry.ID
    display_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="null clears it; omitted leaves it."
    )
    sharing: Sharing | None = strawberry.UNSET
    labels: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="New folders are backfilled within the past-sync window; dropped "
        "folders stop syncing and their mail leaves the inbox.",
    )
    imap: ServerInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="New IMAP settings, password included; the login is proven and the "
        "folders listed again before anything is stored.",
    )
    smtp: ServerInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="Adds SMTP or replaces it (password included, or neither username nor "
        "password for a relay); the login is proven before it is stored.",
    )
    remove_smtp: bool = strawberry.field(
        default=False, description="The account stops sending; its sent history stays."
    )

    def server_changes(self) -> ServerChanges:
        return ServerChanges(
            imap=self.imap.to_domain() if self.imap else None,
            smtp=self.smtp.to_domain() if self.smtp else None,
            remove_smtp=self.remove_smtp,
        )


@strawberry.input
class ReconnectMailAccountInput:
    account_id: strawberry.ID
    imap_password: str
    smtp_password: str | None = strawberry.UNSET
