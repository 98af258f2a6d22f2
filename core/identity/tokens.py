"""API tokens: random, shown once, stored as SHA-256 (they carry 256 bits, so no slow hash)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "ms_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
