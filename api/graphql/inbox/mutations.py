from __future__ import annotations

import strawberry

from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated, UserError
from api.graphql.inbox.inputs import given
from api.graphql.inbox.types import MarkMessagesPayload, Message, messages_of
from core.errors import ServiceError
from core.ids import parse_uuid
from core.inbox.service import FlagChange, mark_messages
from core.models import FolderRole
from core.moves.service import MoveTarget, delete_messages, move_messages


@strawberry.type
class InboxMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set read and/or flagged on the owner's messages at once; the account's "
        "next sync (queued now) writes them to the IMAP server.",
    )
    async def mark_messages(
        self,
        info: Info,
        ids: list[strawberry.ID],
        read: bool | None = strawberry.UNSET,
        flagged: bool | None = strawberry.UNSET,
    ) -> MarkMessagesPayload:
        viewer = viewer_of(info)
        try:
            async with info.context.unit_of_work() as session:
                rows = await mark_messages(
                    session,
                    info.context.runtime,
                    viewer,
                    ids,
                    FlagChange(read=given(read), flagged=given(flagged)),
                )
        except ServiceError as error:
            return MarkMessagesPayload(user_errors=[UserError.from_service(error)])
        return MarkMessagesPayload(messages=await messages_of(info, rows))


@strawberry.input(description="Where messages go: exactly one of the two.")
class MoveTargetInput:
    role: FolderRole | None = strawberry.field(
        default=strawberry.UNSET,
        description="Each message goes to its own account's folder with this role "
        "(ARCHIVE, TRASH, INBOX, ...). ARCHIVE on an account without such a folder (Gmail) "
        "is its ALL folder: moving there from INBOX is what archiving is on Gmail.",
    )
    folder_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A folder of the messages' account."
    )

    def to_domain(self) -> MoveTarget:
        folder_id = given(self.folder_id)
        return MoveTarget(
            role=given(self.role),
            folder_id=None if folder_id is None else parse_uuid(folder_id),
        )


@strawberry.type
class MoveMessagesPayload:
    messages: list[Message] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MoveMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Move the owner's messages, or whole conversations (`threadIds`: their "
        "messages in `fromRole` folders, INBOX by default), to a folder or a role. The inbox "
        "changes at once; the account's next sync (queued now) writes it to the server with "
        "UID MOVE, else UID COPY + \\\\Deleted + UID EXPUNGE. A write-back the server keeps "
        "refusing is undone and explained in `Message.writeBackError`.",
    )
    async def move_messages(
        self,
        info: Info,
        to: MoveTargetInput,
        ids: list[strawberry.ID] | None = strawberry.UNSET,
        thread_ids: list[strawberry.ID] | None = strawberry.UNSET,
        from_role: FolderRole | None = strawberry.UNSET,
    ) -> MoveMessagesPayload:
        threads = [parse_uuid(t) for t in given(thread_ids) or []]
        try:
            async with info.context.unit_of_work() as session:
                rows = await move_messages(
                    session,
                    info.context.runtime,
                    viewer_of(info),
                    given(ids) or [],
                    threads,
                    to.to_domain(),
                    given(from_role) or FolderRole.INBOX,
                )
        except ServiceError as error:
            return MoveMessagesPayload(user_errors=[UserError.from_service(error)])
        return MoveMessagesPayload(messages=await messages_of(info, rows))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete messages in Trash for good: hidden at once, then marked "
        "\\\\Deleted and expunged (UID EXPUNGE, only these) on the server by the next sync.",
    )
    async def delete_messages(self, info: Info, ids: list[strawberry.ID]) -> MoveMessagesPayload:
        try:
            async with info.context.unit_of_work() as session:
                rows = await delete_messages(session, info.context.runtime, viewer_of(info), ids)
        except ServiceError as error:
            return MoveMessagesPayload(user_errors=[UserError.from_service(error)])
        return MoveMessagesPayload(messages=await messages_of(info, rows))
