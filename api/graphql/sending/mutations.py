"""Sending mutations: store the message as QUEUED; a worker delivers it after the commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated, UserError
from api.graphql.sending.inputs import SendAutomatedEmailInput, SendEmailInput
from api.graphql.sending.types import OutgoingMessage, SendEmailPayload
from api.graphql.sending.uploads import read_uploads
from core import models
from core.attachments.service import original_attachments
from core.errors import ServiceError
from core.ids import parse_uuid
from core.sending.service import SendService

SendAction = Callable[[SendService], Awaitable[models.OutgoingMessage]]


async def _send_payload(info: Info, action: SendAction) -> SendEmailPayload:
    """One transaction; a ServiceError rolls it back into userErrors (nothing queued)."""
    try:
        async with info.context.unit_of_work() as session:
            outgoing = await action(SendService(session, info.context.runtime))
    except ServiceError as error:
        return SendEmailPayload(user_errors=[UserError.from_service(error)])
    return SendEmailPayload(outgoing=OutgoingMessage.from_row(outgoing))


@strawberry.type
class SendingMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Queue a message from one of the viewer's accounts (null: the default).",
    )
    async def send_email(self, info: Info, input: SendEmailInput) -> SendEmailPayload:
        viewer = viewer_of(info)
        account_id = parse_uuid(input.from_account_id or None)
        runtime = info.context.runtime
        limit = runtime.settings.max_attachment_bytes
        try:
            files = await read_uploads(input.attachments or [], limit)
            if input.forward_attachments_of:
                files += await original_attachments(
                    runtime,
                    viewer,
                    runtime.message_ids.decode(str(input.forward_attachments_of)),
                    limit - sum(len(f.data) for f in files),
                    "forwardAttachmentsOf",
                )
        except ServiceError as error:
            return SendEmailPayload(user_errors=[UserError.from_service(error)])
        draft = input.to_domain(files)
        return await _send_payload(info, lambda sending: sending.send(viewer, account_id, draft))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Queue an automation's message from the viewer's default account.",
    )
    async def send_automated_email(
        self, info: Info, input: SendAutomatedEmailInput
    ) -> SendEmailPayload:
        viewer = viewer_of(info)
        draft = input.to_domain()
        return await _send_payload(info, lambda sending: sending.send_automated(viewer, draft))
