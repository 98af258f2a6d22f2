from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry

from api.graphql.accounts.types import Folder, MailAccount
from api.graphql.context import Info
from api.graphql.errors import UserError
from api.graphql.execution import plain_resolver
from core.attachments.service import downloadable
from core.ids import MessageIds
from core.inbox.cursor import encode_cursor
from core.inbox.repository import MessageRow
from core.inbox.sanitize import sanitize_html
from core.inbox.service import InboxPage, inbox_count

# Message ids shown lately: each is an AES block to encipher, and the same pages are asked
# for again and again (an id is the same for the life of the message; ~100 bytes each).
_API_IDS = 65_536


@functools.lru_cache(maxsize=_API_IDS)
def api_id_of(ids: MessageIds, message_id: int) -> str:
    return ids.encode(message_id)


@strawberry.type
class EmailAddress:
    name: str | None
    address: str

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> EmailAddress:
        return cls(name=value.get("name"), address=str(value.get("address") or ""))


@strawberry.type
class Attachment:
    id: strawberry.ID = strawberry.field(description="The message's id and the position.")
    filename: str | None = strawberry.field(description="As the sender named it (untrusted).")
    content_type: str
    size: int = strawberry.field(description="Decoded, in bytes.")
    content_id: str | None = strawberry.field(
        description="Its Content-ID, without angle brackets: the HTML body shows it as "
        "`cid:` + this."
    )
    inline: bool = strawberry.field(description="Shown within the body (an inline image).")
    message_key: strawberry.Private[int]
    index: strawberry.Private[int]
    downloadable: strawberry.Private[bool]

    @strawberry.field(
        description="A signed URL of the bytes, for an `<img src>` or a download link "
        "without an Authorization header: it names you and this attachment, expires within "
        "minutes (ask for the message again for a new one) and works only while you may "
        "read the message. Served as a download (`Content-Disposition: attachment`) except "
        "raster images shown inline. Null for mail synced before attachments were "
        "downloadable, until it is synced again."
    )
    def download_url(self, info: Info) -> str | None:
        if not self.downloadable:
            return None
        return info.context.attachment_url(self.message_key, self.index)


# Recipients and attachments listed per message, at most (the query cost counts on it).
MAX_LISTED = 50


@plain_resolver
def _to(root: Message) -> list[EmailAddress]:
    return [EmailAddress.from_json(a) for a in root.row.to_addresses[:MAX_LISTED]]


@plain_resolver
def _cc(root: Message) -> list[EmailAddress]:
    return [EmailAddress.from_json(a) for a in root.row.cc_addresses[:MAX_LISTED]]


@plain_resolver
def _attachments(root: Message) -> list[Attachment]:
    return root.attachment_list()


@strawberry.type
class Message:
    id: strawberry.ID
    message_id: str | None = strawberry.field(description="The Message-ID header.")
    thread_id: strawberry.ID = strawberry.field(
        description="The conversation, across all of the owner's accounts."
    )
    subject: str | None
    from_: EmailAddress | None = strawberry.field(name="from")
    # Lists built only when selected (a page that shows none of them never decodes them).
    to: list[EmailAddress] = strawberry.field(description="At most 50.", resolver=_to)
    cc: list[EmailAddress] = strawberry.field(description="At most 50.", resolver=_cc)
    date: datetime
    snippet: str = strawberry.field(description="The first ~200 characters of the text body.")
    is_read: bool
    is_flagged: bool
    has_attachments: bool
    attachments: list[Attachment] = strawberry.field(
        description="At most 50.", resolver=_attachments
    )
    write_back_error: str | None = strawberry.field(
        description="Why the last move or delete of this message could not be done on the "
        "mail server (it was undone); null otherwise."
    )
    body_downloaded: bool = strawberry.field(
        description="False for a message larger than the maximum message size "
        "(MAILSYNC_MAX_MESSAGE_BYTES): its headers are stored, its body is not downloaded "
        "(bodyText and bodyHtml are empty)."
    )
    # Plain fields, not resolvers: a page of 50 would otherwise await 100 DataLoader calls.
    account: MailAccount
    folder: Folder
    row: strawberry.Private[MessageRow]

    def attachment_list(self) -> list[Attachment]:
        return [
            Attachment(
                id=strawberry.ID(f"{self.id}.{index}"),
                filename=a.get("filename"),
                content_type=str(a.get("contentType") or "application/octet-stream"),
                size=int(a.get("size") or 0),
                content_id=a.get("contentId"),
                inline=bool(a.get("inline")),
                message_key=self.row.id,
                index=index,
                downloadable=downloadable(a),
            )
            for index, a in enumerate(self.row.attachments[:MAX_LISTED])
        ]

    @classmethod
    def from_row(
        cls, row: MessageRow, account: MailAccount, folder: Folder, ids: MessageIds
    ) -> Message:
        sender = None
        if row.from_address:
            sender = EmailAddress(name=row.from_name, address=row.from_address)
        return cls(
            id=strawberry.ID(api_id_of(ids, row.id)),
            message_id=row.message_id,
            thread_id=strawberry.ID(str(row.thread_id)),
            subject=row.subject,
            from_=sender,
            date=row.date,
            snippet=row.snippet,
            is_read=row.is_read,
            is_flagged=row.is_flagged,
            has_attachments=row.has_attachments,
            write_back_error=row.write_back_error,
            body_downloaded=row.body_downloaded,
            account=account,
            folder=folder,
            row=row,
        )

    @strawberry.field(description="The decoded text body.")
    async def body_text(self, info: Info) -> str | None:
        text, _ = await info.context.loaders.bodies.load(self.row.id)
        return text

    @strawberry.field(
        description="Sanitized: no script, style, event handlers, javascript: or relative "
        "URLs; inline images stay cid: references, or with `inlineImages: true` become their "
        "attachments' signed downloadUrls, so the message shows as sent. Remote (http/https) "
        "images are removed unless `allowRemoteImages` is true: they tell the sender when "
        "the mail was read."
    )
    async def body_html(
        self, info: Info, allow_remote_images: bool = False, inline_images: bool = False
    ) -> str | None:
        _, html = await info.context.loaders.bodies.load(self.row.id)
        inline_image = None
        if inline_images:
            by_cid = {
                a.content_id: a for a in self.attachment_list() if a.content_id and a.downloadable
            }

            def inline_image(content_id: str) -> str | None:
                found = by_cid.get(content_id)
                return found.download_url(info) if found is not None else None

        return sanitize_html(
            html, allow_remote_images=allow_remote_images, inline_image=inline_image
        )

    @strawberry.field(
        description="Every message of this conversation the viewer may read, oldest first."
    )
    async def thread(self, info: Info) -> list[Message]:
        rows = await info.context.loaders.thread.load(self.row.thread_id)
        return await messages_of(info, rows)


async def messages_of(info: Info, rows: Sequence[MessageRow]) -> list[Message]:
    """Messages with their accounts and folders (one batched load each), leaving out any
    whose account the viewer can no longer read."""
    loaders = info.context.loaders
    account_rows = await loaders.readable_account.load_many([r.account_id for r in rows])
    folder_rows = await loaders.readable_folder.load_many([r.folder_id for r in rows])
    accounts = {a.id: MailAccount.from_row(a) for a in account_rows if a is not None}
    folders = {f.id: Folder.from_row(f) for f in folder_rows if f is not None}
    ids = info.context.runtime.message_ids
    return [
        Message.from_row(r, accounts[r.account_id], folders[r.folder_id], ids)
        for r in rows
        if r.account_id in accounts and r.folder_id in folders
    ]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@plain_resolver
def _cursor(root: MessageEdge) -> str:
    return encode_cursor(root.node.row.date, root.node.id)


@strawberry.type
class MessageEdge:
    cursor: str = strawberry.field(resolver=_cursor)
    node: Message


@strawberry.type
class MarkMessagesPayload:
    messages: list[Message] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo
    page: strawberry.Private[InboxPage]
    total: strawberry.Private[int | None] = None  # counted with the page when selected

    @classmethod
    def from_page(
        cls, page: InboxPage, ids: MessageIds, total: int | None = None
    ) -> MessageConnection:
        """The page's accounts and folders come with its scope: no further query."""
        accounts = {a.id: MailAccount.from_row(a) for a in page.scope.accounts}
        folders = {f.id: Folder.from_row(f) for f in page.scope.folders}
        nodes = [
            Message.from_row(r, accounts[r.account_id], folders[r.folder_id], ids)
            for r in page.rows
        ]
        edges = [MessageEdge(node=n) for n in nodes]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=_cursor(edges[-1]) if edges else None,
            ),
            page=page,
            total=total,
        )

    @strawberry.field(
        description="Messages in the whole listing (each Message-ID once). Costs a scan of "
        "the listing: select it only when it is shown."
    )
    async def total_count(self, info: Info) -> int:
        if self.total is not None:
            return self.total
        async with info.context.read_session() as session:
            return await inbox_count(session, self.page, info.context.runtime.counts)
