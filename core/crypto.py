"""Credential encryption at rest: AES-256-GCM with key ids, for key rotation.

A ciphertext is ``version(1) | key id(4) | nonce(12) | AES-GCM(ciphertext + tag)``. The
associated data binds it to one row and one field (e.g. ``mail_account:<id>:imap``), so a
ciphertext copied to another row or field fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_KEY_ID_LEN = 4
_NONCE_LEN = 12


class DecryptionError(Exception):
    """The ciphertext is damaged, bound to another row, or its key is no longer configured."""


def generate_key() -> str:
    """A new 256-bit key, as ``MAILSYNC_SECRET_KEYS`` expects it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("a key is not valid base64 (use `mailsync generate-key`)") from None
    if len(raw) != 32:
        raise ValueError("a key must be 32 bytes (use `mailsync generate-key`)")
    return raw


def parse_keys(texts: tuple[str, ...]) -> list[bytes]:
    if not texts:
        raise ValueError("needs at least one key (use `mailsync generate-key`)")
    return [_decode_key(t) for t in texts]


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"mailsync-key-id" + key).digest()[:_KEY_ID_LEN]


@dataclass(frozen=True)
class KeyRing:
    """The first key encrypts; every key decrypts what it encrypted."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, texts: tuple[str, ...]) -> KeyRing:
        return cls(tuple(parse_keys(texts)))

    def encrypt(self, plaintext: str, associated_data: str) -> bytes:
        key = self.keys[0]
        nonce = os.urandom(_NONCE_LEN)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), associated_data.encode())
        return _VERSION + _key_id(key) + nonce + sealed

    def decrypt(self, ciphertext: bytes, associated_data: str) -> str:
        if ciphertext[:1] != _VERSION:
            raise DecryptionError("unknown ciphertext version")
        key_id = ciphertext[1 : 1 + _KEY_ID_LEN]
        nonce_end = 1 + _KEY_ID_LEN + _NONCE_LEN
        nonce, sealed = ciphertext[1 + _KEY_ID_LEN : nonce_end], ciphertext[nonce_end:]
        for key in self.keys:
            if _key_id(key) == key_id:
                try:
                    plain = AESGCM(key).decrypt(nonce, sealed, associated_data.encode())
                except InvalidTag:
                    raise DecryptionError("ciphertext does not match its row") from None
                return plain.decode()
        raise DecryptionError("the key that encrypted this secret is not configured")

    def needs_reencryption(self, ciphertext: bytes) -> bool:
        """True when the secret was sealed with an older key (rotate it on next write)."""
        return ciphertext[1 : 1 + _KEY_ID_LEN] != _key_id(self.keys[0])
