"""Files sent with sendEmail (the GraphQL multipart request spec, Strawberry's Upload)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import ErrorCode, ServiceError
from core.sending.compose import MAX_ATTACHMENTS, FileAttachment

_CHUNK = 256 * 1024


async def read_uploads(uploads: Sequence[Any], max_total: int) -> list[FileAttachment]:
    """The uploaded files (Starlette UploadFiles, spooled to disk by the form parser), read
    a chunk at a time and refused as soon as together they pass ``max_total`` bytes."""
    if len(uploads) > MAX_ATTACHMENTS:  # before any is read
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"At most {MAX_ATTACHMENTS} attachments per message.",
            "attachments",
        )
    try:
        return await _read(uploads, max_total)
    finally:
        for upload in uploads:  # their spooled temporary files, which nothing else closes
            if hasattr(upload, "close"):
                await upload.close()


async def _read(uploads: Sequence[Any], max_total: int) -> list[FileAttachment]:
    files: list[FileAttachment] = []
    total = 0
    for position, upload in enumerate(uploads):
        if not hasattr(upload, "read"):
            raise ServiceError(
                ErrorCode.INVALID_INPUT, "Not an uploaded file.", f"attachments[{position}]"
            )
        data = bytearray()
        while chunk := await upload.read(_CHUNK):
            total += len(chunk)
            if total > max_total:
                raise ServiceError(
                    ErrorCode.INVALID_INPUT,
                    f"The attachments add up to more than {max_total} bytes.",
                    f"attachments[{position}]",
                )
            data += chunk
        files.append(
            FileAttachment(
                getattr(upload, "filename", None),
                getattr(upload, "content_type", None),
                bytes(data),
            )
        )
    return files
