"""Sign-ins in progress: the OAuth2 ``state``, single-use, expiring, bound to the viewer.

The state is 256 random bits handed to the browser; Redis keeps only its SHA-256 as the
key, with a TTL, so a Redis dump holds no usable state. The record says who started the
sign-in, for which provider (and which account, for a reconnect), and carries the PKCE
code verifier and the OIDC nonce, encrypted with the key ring and bound to the state.
Taking a record deletes it in the same step (a Lua script), so a state works once: a
replayed callback finds nothing. A Redis flush only ends sign-ins in progress.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from core.crypto import DecryptionError, KeyRing
from core.models.enums import OAuthProvider

MAX_STATE_LENGTH = 128  # ours are 43 characters; anything much longer is not ours

_TAKE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""


@dataclass(frozen=True)
class PendingSignIn:
    user_id: uuid.UUID
    provider: OAuthProvider
    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)
    expires_at: datetime
    login_hint: str | None = None
    account_id: uuid.UUID | None = None  # set when reconnecting that account


def _key(state: str) -> str:
    return "mailsync:oauth-state:" + hashlib.sha256(state.encode()).hexdigest()


def _aad(state: str) -> str:
    return "oauth_state:" + hashlib.sha256(state.encode()).hexdigest()


class SignInStates:
    def __init__(self, redis: Redis, key_ring: KeyRing, lifetime_seconds: float) -> None:
        self._redis = redis
        self._key_ring = key_ring
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._take = redis.register_script(_TAKE)

    @staticmethod
    def new_secrets() -> tuple[str, str, str]:
        """A state, a PKCE code verifier (RFC 7636: 43-128 characters) and a nonce."""
        return secrets.token_urlsafe(32), secrets.token_urlsafe(48), secrets.token_urlsafe(16)

    async def remember(
        self,
        state: str,
        *,
        user_id: uuid.UUID,
        provider: OAuthProvider,
        code_verifier: str,
        nonce: str,
        login_hint: str | None,
        account_id: uuid.UUID | None,
    ) -> PendingSignIn:
        expires_at = datetime.now(UTC) + self._lifetime
        sealed = self._key_ring.encrypt(json.dumps([code_verifier, nonce]), _aad(state))
        record = {
            "user_id": str(user_id),
            "provider": provider.value,
            "secrets": base64.b64encode(sealed).decode(),
            "login_hint": login_hint,
            "account_id": str(account_id) if account_id else None,
            "expires_at": expires_at.isoformat(),
        }
        milliseconds = max(int(self._lifetime.total_seconds() * 1000), 1)
        await self._redis.set(_key(state), json.dumps(record), px=milliseconds, nx=True)
        return PendingSignIn(
            user_id, provider, code_verifier, nonce, expires_at, login_hint, account_id
        )

    async def take(self, state: str) -> PendingSignIn | None:
        """The sign-in started with ``state``, removed so that it cannot be used again;
        None when unknown, expired or already taken."""
        if not state or len(state) > MAX_STATE_LENGTH or not state.isascii():
            return None
        raw = await self._take(keys=[_key(state)])
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            code_verifier, nonce = json.loads(
                self._key_ring.decrypt(base64.b64decode(record["secrets"]), _aad(state))
            )
            pending = PendingSignIn(
                user_id=uuid.UUID(record["user_id"]),
                provider=OAuthProvider(record["provider"]),
                code_verifier=code_verifier,
                nonce=nonce,
                expires_at=datetime.fromisoformat(record["expires_at"]),
                login_hint=record.get("login_hint"),
                account_id=uuid.UUID(record["account_id"]) if record.get("account_id") else None,
            )
        except (DecryptionError, ValueError, KeyError, TypeError):
            return None  # written by another key set or damaged: as good as unknown
        return pending if pending.expires_at > datetime.now(UTC) else None
