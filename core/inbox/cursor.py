"""Opaque keyset cursors over (date, id), the inbox's sort order (newest first)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.errors import ErrorCode, ServiceError
from core.ids import UNKNOWN_MESSAGE_ID, MessageIds

_VERSION = "m2"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Cursor:
    date: datetime
    id: int


def encode_cursor(date: datetime, api_id: str) -> str:
    """``api_id``: the message's opaque API id (the row key never leaves the service)."""
    micros = (date - _EPOCH) // timedelta(microseconds=1)
    raw = f"{_VERSION}:{micros}:{api_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, ids: MessageIds) -> Cursor:
    """The cursor's position; INVALID_INPUT for anything this service did not hand out."""
    invalid = ServiceError(
        ErrorCode.INVALID_INPUT,
        "`after` is not a cursor from this inbox; pass a pageInfo.endCursor or edge cursor.",
        "after",
    )
    try:
        padded = text + "=" * (-len(text) % 4)
        version, micros, message_id = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(":")
        )
        if version != _VERSION:
            raise invalid
        date = _EPOCH + timedelta(microseconds=int(micros))
        position = Cursor(date, ids.decode(message_id))
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        raise invalid from None
    if position.id == UNKNOWN_MESSAGE_ID:
        raise invalid
    return position
