"""Downloading an attachment through its signed link: checked, then streamed from IMAP.

The link is verified and the viewer's right to read the message checked again (in one
short session, closed before the mail server is contacted); the part is then fetched by
UID and section, decoded and passed on a slice at a time, so memory stays flat whatever
the attachment's size. A message no longer where it was stored (expunged, UIDVALIDITY
changed) is GONE, never another message's part.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.accounts.logins import stored_imap_login
from core.attachments import repository
from core.attachments.links import DownloadLinks, LinkRefused
from core.crypto import DecryptionError
from core.errors import ErrorCode, ServiceError
from core.identity.repository import viewer_of_user
from core.identity.viewer import Viewer
from core.mail.imap import imap_session
from core.mail.parts import PartGone, stream_part
from core.mail.server import MailConnectOptions, ServerLogin
from core.runtime import Runtime
from core.sending.compose import FileAttachment

log = logging.getLogger(__name__)


class Refusal(enum.Enum):
    INVALID_LINK = 403
    NOT_FOUND = 404
    GONE = 410
    SERVER_UNREACHABLE = 502


class DownloadRefused(Exception):
    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


@dataclass(frozen=True)
class AttachmentFile:
    filename: str | None
    content_type: str
    inline: bool
    body: AsyncIterator[bytes]


def download_links(runtime: Runtime) -> DownloadLinks:
    return DownloadLinks(runtime.message_ids, runtime.settings.attachment_link_seconds)


def downloadable(attachment: dict[str, Any]) -> bool:
    """Whether the stored attachment says where it is (rows parsed before parts were
    numbered do not, until the message is synced again)."""
    return isinstance(attachment.get("part"), str)


async def open_download(runtime: Runtime, token: str) -> AttachmentFile:
    """The attachment a link names, its first slice already fetched. Raises DownloadRefused."""
    try:
        link = download_links(runtime).verify(token)
    except LinkRefused as refused:
        raise DownloadRefused(Refusal.INVALID_LINK, str(refused)) from None
    async with runtime.session_factory() as session:
        viewer = await viewer_of_user(session, link.viewer_id)
        source = None
        if viewer is not None:
            source = await repository.readable_source(session, viewer, link.message_id)
        if source is None:
            raise DownloadRefused(
                Refusal.NOT_FOUND, "No such message: it was deleted or is no longer shared."
            )
        try:
            login = stored_imap_login(runtime, source.account)
        except DecryptionError:
            raise DownloadRefused(
                Refusal.SERVER_UNREACHABLE, "The account's stored login cannot be used."
            ) from None
    if link.index >= len(source.attachments) or not downloadable(source.attachments[link.index]):
        raise DownloadRefused(Refusal.NOT_FOUND, "The message has no such attachment.")
    attachment = source.attachments[link.index]
    body = _fetched(
        login,
        runtime.mail_options,
        source.folder_name,
        source.uidvalidity,
        source.uid,
        str(attachment["part"]),
        str(attachment.get("encoding") or ""),
        _exact_size(attachment),
    )
    try:
        first = await anext(body)
    except PartGone as gone:
        log.info("attachment download: %s", gone)
        raise DownloadRefused(
            Refusal.GONE, "The message is no longer on the mail server (moved or deleted)."
        ) from None
    except ServiceError as error:
        raise DownloadRefused(Refusal.SERVER_UNREACHABLE, error.message) from None
    return AttachmentFile(
        filename=attachment.get("filename"),
        content_type=str(attachment.get("contentType") or "application/octet-stream"),
        inline=bool(attachment.get("inline")),
        body=_prepend(first, body),
    )


async def _fetched(
    login: ServerLogin,
    options: MailConnectOptions,
    folder: str,
    uidvalidity: int | None,
    uid: int,
    part: str,
    encoding: str,
    size: int | None,
) -> AsyncIterator[bytes]:
    async with imap_session(login, options) as connection:
        async for chunk in stream_part(connection, folder, uidvalidity, uid, part, encoding, size):
            yield chunk


def _exact_size(attachment: dict[str, Any]) -> int | None:
    """The parser's decoded size, when it is exact (an attached message's is an estimate)."""
    kind = str(attachment.get("contentType") or "")
    size = attachment.get("size")
    return size if isinstance(size, int) and not kind.startswith("message/") else None


async def original_attachments(
    runtime: Runtime, viewer: Viewer, message_key: int, max_total: int, field: str
) -> list[FileAttachment]:
    """The attachments of a message the viewer may read, fetched from its IMAP server (one
    session; no database connection held meanwhile), for a forward to carry them."""
    missing = ServiceError(ErrorCode.NOT_FOUND, "No such message.", field)
    async with runtime.session_factory() as session:
        source = await repository.readable_source(session, viewer, message_key)
        if source is None:
            raise missing
        try:
            login = stored_imap_login(runtime, source.account)
        except DecryptionError:
            raise ServiceError(
                ErrorCode.SERVER_UNREACHABLE, "The account's stored login cannot be used.", field
            ) from None
    parts = [a for a in source.attachments if downloadable(a)]
    if sum(int(a.get("size") or 0) for a in parts) > max_total:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"Its attachments add up to more than {max_total} bytes.",
            field,
        )
    files: list[FileAttachment] = []
    total = 0
    try:
        async with imap_session(login, runtime.mail_options) as connection:
            for attachment in parts:
                data = bytearray()
                async for chunk in stream_part(
                    connection,
                    source.folder_name,
                    source.uidvalidity,
                    source.uid,
                    str(attachment["part"]),
                    str(attachment.get("encoding") or ""),
                    _exact_size(attachment),
                ):
                    total += len(chunk)
                    if total > max_total:
                        raise ServiceError(
                            ErrorCode.INVALID_INPUT,
                            f"Its attachments add up to more than {max_total} bytes.",
                            field,
                        )
                    data += chunk
                files.append(
                    FileAttachment(
                        attachment.get("filename"), attachment.get("contentType"), bytes(data)
                    )
                )
    except PartGone:
        raise ServiceError(
            ErrorCode.NOT_FOUND, "The message is no longer on the mail server.", field
        ) from None
    except ServiceError as error:
        raise error.for_field(field) from None
    return files


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
