"""Opaque keyset cursors over (date, id), the inbox's sort order (newest first)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.errors import ErrorCode, ServiceError

_VERSION = "m1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Cursor:
    date: datetime
    id: int


def encode_cursor(date: datetime, message_id: int) -> str:
    micros = (date - _EPOCH) // timedelta(microseconds=1)
    raw = f"{_VERSION}:{micros}:{message_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
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
        position = Cursor(date, int(message_id))
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        raise invalid from None
    if position.id <= 0 or position.id >= 2**63:
        raise invalid
    return position
