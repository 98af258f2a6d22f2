from __future__ import annotations

import uuid
from typing import overload

# Never assigned to a row: a malformed id looks up nothing and answers NOT_FOUND like any
# other id the viewer cannot see.
UNKNOWN_ID = uuid.UUID(int=0)


@overload
def parse_uuid(text: str) -> uuid.UUID: ...
@overload
def parse_uuid(text: None) -> None: ...
def parse_uuid(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return UNKNOWN_ID


# Messages are keyed by a bigint; their GraphQL id is its decimal text. Never a real row.
UNKNOWN_MESSAGE_ID = 0


def parse_message_id(text: str) -> int:
    """A message id from the API; anything malformed looks up nothing (NOT_FOUND)."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return UNKNOWN_MESSAGE_ID
    return int(text)
