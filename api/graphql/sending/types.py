from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.context import Info
from api.graphql.enums import SendStatus
from api.graphql.errors import UserError
from core import models

if TYPE_CHECKING:
    from api.graphql.accounts.types import MailAccount


@strawberry.type(description="A message sent (or being sent) from one of the viewer's accounts.")
class OutgoingMessage:
    id: strawberry.ID
    from_address: str
    status: SendStatus
    error: str | None = strawberry.field(
        description="Why it failed, or the last temporary failure while it is retried."
    )
    created_at: datetime
    sent_at: datetime | None
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    automated: bool = strawberry.field(description="Sent by sendAutomatedEmail.")
    message_id: str = strawberry.field(description="The Message-ID header, without brackets.")
    thread_id: strawberry.ID
    attempts: int
    account_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: models.OutgoingMessage) -> OutgoingMessage:
        return cls(
            id=strawberry.ID(str(row.id)),
            from_address=row.from_address,
            status=row.status,
            error=row.error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            to=list(row.to_addresses),
            cc=list(row.cc_addresses),
            bcc=list(row.bcc_addresses),
            subject=row.subject,
            automated=row.automated,
            message_id=row.message_id,
            thread_id=strawberry.ID(str(row.thread_id)),
            attempts=row.attempts,
            account_id=row.account_id,
        )

    @strawberry.field(description="The sending account; null once it has been removed.")
    async def account(
        self, info: Info
    ) -> Annotated[MailAccount, strawberry.lazy("api.graphql.accounts.types")] | None:
        from api.graphql.accounts.types import MailAccount

        if self.account_id is None:
            return None
        row = await info.context.loaders.readable_account.load(self.account_id)
        return MailAccount.from_row(row) if row is not None else None


@strawberry.type
class SendEmailPayload:
    outgoing: OutgoingMessage | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
