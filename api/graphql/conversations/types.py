from __future__ import annotations

import strawberry

from api.graphql.accounts.types import Folder, MailAccount
from api.graphql.inbox.types import EmailAddress, Message, PageInfo
from core.conversations.repository import MAX_PARTICIPANTS
from core.conversations.service import ConversationPage
from core.ids import MessageIds
from core.inbox.cursor import encode_cursor


@strawberry.type(description="One thread of the listing: its latest message and a summary.")
class Conversation:
    id: strawberry.ID = strawberry.field(description="The thread's id (Message.threadId).")
    latest_message: Message = strawberry.field(
        description="The latest message of the thread in this listing (that matches the "
        "filter); its `thread` field lists the whole conversation."
    )
    message_count: int = strawberry.field(
        description="Messages of the thread in the listing's accounts, every synced folder "
        "(sent replies too), each Message-ID once."
    )
    unread_count: int
    participants: list[EmailAddress] = strawberry.field(
        description=f"The senders, in the order they first wrote; at most {MAX_PARTICIPANTS}."
    )
    accounts: list[MailAccount] = strawberry.field(
        description="The accounts (among the listing's) the thread's messages are in."
    )
    is_flagged: bool = strawberry.field(description="Whether any of its messages is flagged.")
    has_attachments: bool = strawberry.field(
        description="Whether any of its messages has attachments."
    )


@strawberry.type
class ConversationEdge:
    cursor: str
    node: Conversation


@strawberry.type
class ConversationConnection:
    edges: list[ConversationEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: ConversationPage, ids: MessageIds) -> ConversationConnection:
        """Accounts and folders come with the page's scope: no further query."""
        accounts = {a.id: MailAccount.from_row(a) for a in page.scope.accounts}
        folders = {f.id: Folder.from_row(f) for f in page.scope.folders}
        edges = []
        for item in page.conversations:
            row, summary = item.latest, item.summary
            latest = Message.from_row(row, accounts[row.account_id], folders[row.folder_id], ids)
            node = Conversation(
                id=strawberry.ID(str(row.thread_id)),
                latest_message=latest,
                message_count=summary.message_count,
                unread_count=summary.unread_count,
                participants=[EmailAddress.from_json(p) for p in summary.participants],
                accounts=[accounts[a] for a in summary.account_ids if a in accounts],
                is_flagged=summary.is_flagged,
                has_attachments=summary.has_attachments,
            )
            edges.append(ConversationEdge(cursor=encode_cursor(row.date, latest.id), node=node))
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
