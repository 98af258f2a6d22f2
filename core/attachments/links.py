"""Short-lived signed download links: one names a viewer, a message and an attachment.

An ``<img src>`` or a download link cannot send an Authorization header, so the link itself
is the credential: it is signed (HMAC-SHA256 under a key of this installation), expires in
minutes, and names the viewer, whose right to read the message is checked again on use.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
import time
import uuid
from dataclasses import dataclass

from core.ids import MessageIds

PATH_PREFIX = "/attachments/"
_LAYOUT = struct.Struct(">QH16sI")  # message row key, attachment index, viewer, expiry
_MAC_BYTES = 16
_TOKEN_BYTES = _LAYOUT.size + _MAC_BYTES


@dataclass(frozen=True)
class Link:
    message_id: int  # the row key
    index: int  # the attachment's position in the message's list
    viewer_id: uuid.UUID
    expires_at: int  # unix seconds


class LinkRefused(Exception):
    """The token is malformed, forged or expired (the text says which, for the response)."""


class DownloadLinks:
    def __init__(self, ids: MessageIds, lifetime_seconds: int) -> None:
        self._key = ids.derived_key("attachment-links")
        self.lifetime_seconds = lifetime_seconds

    def token(
        self, message_id: int, index: int, viewer_id: uuid.UUID, *, now: float | None = None
    ) -> str:
        expires = int(now if now is not None else time.time()) + self.lifetime_seconds
        body = _LAYOUT.pack(message_id, index, viewer_id.bytes, expires)
        mac = hmac.digest(self._key, body, "sha256")[:_MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")

    def path(self, message_id: int, index: int, viewer_id: uuid.UUID) -> str:
        return PATH_PREFIX + self.token(message_id, index, viewer_id)

    def verify(self, token: str, *, now: float | None = None) -> Link:
        if len(token) > 100 or not token.isascii():
            raise LinkRefused("This download link is not valid.")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise LinkRefused("This download link is not valid.") from None
        if len(raw) != _TOKEN_BYTES:
            raise LinkRefused("This download link is not valid.")
        body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, hmac.digest(self._key, body, "sha256")[:_MAC_BYTES]):
            raise LinkRefused("This download link is not valid.")
        message_id, index, viewer, expires = _LAYOUT.unpack(body)
        if expires < int(now if now is not None else time.time()):
            raise LinkRefused("This download link has expired: ask for the message again.")
        return Link(message_id, index, uuid.UUID(bytes=viewer), expires)
