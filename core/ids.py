from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from typing import overload

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


# Messages are keyed by a bigint from one sequence. Never a real row.
UNKNOWN_MESSAGE_ID = 0
MESSAGE_ID_KEY = "message_ids"  # its row in instance_secrets
_OPAQUE_LENGTH = 22  # 16 bytes in unpadded base64url
_CHECK = bytes(8)


class MessageIds:
    """A message's API id: its bigint key and eight zero bytes, enciphered as one AES block
    under this installation's own key (kept in the database, so it never changes).

    The ids are stable for the life of a message, reveal nothing of the sequence (so not
    the mail volume of other companies), and one that was not handed out decodes to a
    block whose check bytes are not zero (a 2**-64 chance otherwise): it looks up nothing.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("the message-id key is 16 bytes")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305  # one block: a PRP
        self._key = key

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for ``purpose`` (e.g. signing download links), from this one."""
        return hmac.digest(self._key, b"mailsync/" + purpose.encode(), "sha256")

    def encode(self, message_id: int) -> str:
        encryptor = self._cipher.encryptor()
        block = encryptor.update(message_id.to_bytes(8, "big") + _CHECK) + encryptor.finalize()
        return base64.urlsafe_b64encode(block).decode("ascii").rstrip("=")

    def decode(self, text: str) -> int:
        """The row key of an API id; UNKNOWN_MESSAGE_ID for anything malformed or forged."""
        text = text.strip()
        if len(text) != _OPAQUE_LENGTH or not text.isascii():
            return UNKNOWN_MESSAGE_ID
        try:
            block = base64.urlsafe_b64decode(text + "==")
        except (binascii.Error, ValueError):
            return UNKNOWN_MESSAGE_ID
        if len(block) != 16:
            return UNKNOWN_MESSAGE_ID
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(block) + decryptor.finalize()
        if plain[8:] != _CHECK:
            return UNKNOWN_MESSAGE_ID
        value = int.from_bytes(plain[:8], "big")
        return value if 0 < value < 2**63 else UNKNOWN_MESSAGE_ID
