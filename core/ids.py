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
