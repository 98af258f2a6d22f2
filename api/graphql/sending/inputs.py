from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.file_uploads import Upload

from core.sending.compose import Draft, FileAttachment


@strawberry.input
class SendEmailInput:
    to: list[str]
    subject: str
    from_account_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null: the default account."
    )
    cc: list[str] | None = strawberry.UNSET
    bcc: list[str] | None = strawberry.UNSET
    body_text: str | None = strawberry.UNSET
    body_html: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Without bodyText, the text part is derived from it.",
    )
    in_reply_to_message_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="A message the viewer may read: sets In-Reply-To, References, thread.",
    )
    attachments: list[Upload] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Files, sent as a GraphQL multipart request "
        "(github.com/jaydenseric/graphql-multipart-request-spec); together at most "
        "MAILSYNC_MAX_ATTACHMENT_BYTES (25 MB by default), refused while they stream in.",
    )

    forward_attachments_of: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="A message the viewer may read whose attachments this one carries "
        "too (a forward), fetched from its mail server: the client need not download them. "
        "They count towards the same size limit.",
    )

    def to_domain(self, files: Sequence[FileAttachment] = ()) -> Draft:
        return Draft(
            to=list(self.to),
            cc=list(self.cc or ()),
            bcc=list(self.bcc or ()),
            subject=self.subject,
            body_text=self.body_text or None,
            body_html=self.body_html or None,
            in_reply_to=str(self.in_reply_to_message_id) if self.in_reply_to_message_id else None,
            attachments=tuple(files),
        )


@strawberry.input(description="Always sent from the default account at the time of the call.")
class SendAutomatedEmailInput:
    to: list[str]
    subject: str
    body_text: str | None = strawberry.UNSET
    body_html: str | None = strawberry.UNSET

    def to_domain(self) -> Draft:
        return Draft(
            to=list(self.to),
            subject=self.subject,
            body_text=self.body_text or None,
            body_html=self.body_html or None,
        )
