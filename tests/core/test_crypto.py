"""Credential encryption at rest: AES-GCM bound to (row, field), with key rotation.

The pure KeyRing checks need nothing; the rest store accounts through the real API, then
decrypt them the way the sync worker does (``core.accounts.credentials.imap_login``) and
log in to a real IMAP server with what comes out.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from core.accounts import credentials
from core.crypto import DecryptionError, KeyRing, generate_key
from core.mail.imap import imap_session
from core.models import MailAccount
from core.runtime import Runtime, open_runtime
from core.settings import Settings
from tests.support.app import serve
from tests.support.factories import ADD_ACCOUNT, TestUser, account_input
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401

NewUser = Callable[..., Awaitable[TestUser]]
MakeSettings = Callable[..., Settings]

RECONNECT = """
mutation Reconnect($input: ReconnectMailAccountInput!) {
  reconnectMailAccount(input: $input) {
    account { id status lastError }
    userErrors { code field message }
  }
}
"""


def _ring(*keys: str) -> KeyRing:
    return KeyRing.from_settings(keys)


def _aad(account_id: uuid.UUID, field: str = "imap") -> str:
    return f"mail_account:{account_id}:{field}"


# -- KeyRing, no I/O -------------------------------------------------------------------------


def test_round_trip_returns_the_plaintext_and_hides_it() -> None:
    ring = _ring(generate_key())
    secret = "correct horse battery staple ✓"
    aad = _aad(uuid.uuid4())
    sealed = ring.encrypt(secret, aad)
    assert ring.decrypt(sealed, aad) == secret
    assert secret.encode() not in sealed
    # A fresh nonce each time: the same secret never gives the same bytes.
    assert ring.encrypt(secret, aad) != sealed


def test_ciphertext_bound_to_account_a_does_not_decrypt_as_account_b() -> None:
    ring = _ring(generate_key())
    account_a, account_b = uuid.uuid4(), uuid.uuid4()
    sealed = ring.encrypt("imap-password", _aad(account_a))
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, _aad(account_b))
    assert ring.decrypt(sealed, _aad(account_a)) == "imap-password"


def test_ciphertext_for_imap_does_not_decrypt_as_smtp() -> None:
    ring = _ring(generate_key())
    account = uuid.uuid4()
    sealed = ring.encrypt("imap-password", _aad(account, "imap"))
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, _aad(account, "smtp"))


def test_tampered_ciphertext_does_not_decrypt() -> None:
    ring = _ring(generate_key())
    aad = _aad(uuid.uuid4())
    sealed = bytearray(ring.encrypt("imap-password", aad))
    sealed[-1] ^= 0x01
    with pytest.raises(DecryptionError):
        ring.decrypt(bytes(sealed), aad)


def test_rotation_older_keys_still_decrypt_and_the_first_key_encrypts() -> None:
    k1, k2, k3 = generate_key(), generate_key(), generate_key()
    aad = _aad(uuid.uuid4())
    old = _ring(k1).encrypt("imap-password", aad)
    rotated = _ring(k2, k1)
    assert rotated.decrypt(old, aad) == "imap-password"
    assert rotated.needs_reencryption(old) is True
    new = rotated.encrypt("imap-password", aad)
    assert rotated.needs_reencryption(new) is False
    assert _ring(k2).decrypt(new, aad) == "imap-password"
    with pytest.raises(DecryptionError):
        _ring(k1).decrypt(new, aad)
    with pytest.raises(DecryptionError):
        _ring(k3).decrypt(old, aad)


# -- stored accounts -------------------------------------------------------------------------


async def _add_account(client: GraphQLClient, server: ImapServer, **extra: Any) -> uuid.UUID:
    data = await client.execute(ADD_ACCOUNT, {"input": {**account_input(server), **extra}})
    payload = data["addMailAccount"]
    assert payload["userErrors"] == [], payload
    return uuid.UUID(payload["account"]["id"])


async def _row(runtime: Runtime, account_id: uuid.UUID) -> MailAccount:
    async with runtime.session_factory() as session:
        row = await session.scalar(select(MailAccount).where(MailAccount.id == account_id))
    assert row is not None
    return row


async def _can_log_in(runtime: Runtime, account_id: uuid.UUID) -> list[str]:
    """Decrypt the stored login with ``runtime``'s keys and log in; the folder names."""
    async with runtime.session_factory() as session:
        row = await session.scalar(select(MailAccount).where(MailAccount.id == account_id))
        assert row is not None
        login = credentials.imap_login(runtime.key_ring, row)
    async with imap_session(login, runtime.mail_options) as connection:
        return [m.name for m in await connection.list_mailboxes()]


async def test_ciphertext_copied_to_another_row_does_not_decrypt(
    gql: GraphQLClient, new_user: NewUser, pymap: ImapServer, runtime: Runtime
) -> None:
    first, second = await new_user(), await new_user()
    account_a = await _add_account(gql.as_user(first.token), pymap)
    account_b = await _add_account(gql.as_user(second.token), pymap)
    stolen = (await _row(runtime, account_a)).imap_password_encrypted
    async with runtime.engine.begin() as connection:
        await connection.execute(
            update(MailAccount)
            .where(MailAccount.id == account_b)
            .values(imap_password_encrypted=stolen)
        )
    row_b = await _row(runtime, account_b)
    with pytest.raises(DecryptionError):
        credentials.imap_login(runtime.key_ring, row_b)
    # The row it came from still works.
    row_a = await _row(runtime, account_a)
    assert credentials.imap_login(runtime.key_ring, row_a).password == pymap.password


async def test_stored_secret_is_bound_to_its_row_and_field(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
) -> None:
    user = await new_user()
    account_id = await _add_account(gql.as_user(user.token), pymap, smtp=smtp_server.smtp_input())
    row = await _row(runtime, account_id)
    ring = runtime.key_ring
    assert ring.decrypt(row.imap_password_encrypted, _aad(account_id, "imap")) == pymap.password
    assert row.smtp_password_encrypted is not None
    assert (
        ring.decrypt(row.smtp_password_encrypted, _aad(account_id, "smtp")) == smtp_server.password
    )
    with pytest.raises(DecryptionError):
        ring.decrypt(row.imap_password_encrypted, _aad(account_id, "smtp"))
    with pytest.raises(DecryptionError):
        ring.decrypt(row.imap_password_encrypted, _aad(uuid.uuid4(), "imap"))


async def test_key_rotation_keeps_old_secrets_working_and_reconnect_rewraps_them(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    runtime: Runtime,
    make_settings: MakeSettings,
    secret_key: str,
    http: httpx.AsyncClient,
) -> None:
    k1, k2, unrelated = secret_key, generate_key(), generate_key()
    user = await new_user()
    account_id = await _add_account(gql.as_user(user.token), pymap)  # sealed with K1

    # A deployment that has added K2 in front still reads what K1 sealed.
    async with open_runtime(make_settings(secret_keys=f"{k2},{k1}")) as rotated:
        row = await _row(rotated, account_id)
        assert rotated.key_ring.needs_reencryption(row.imap_password_encrypted) is True
        assert "INBOX" in await _can_log_in(rotated, account_id)

    # A new password through an app running with K2,K1 is sealed with K2.
    async with serve(make_settings(secret_keys=f"{k2},{k1}")) as app:
        client = GraphQLClient(http, app.graphql_url, user.token)
        data = await client.execute(
            RECONNECT, {"input": {"accountId": str(account_id), "imapPassword": pymap.password}}
        )
        payload = data["reconnectMailAccount"]
        assert payload["userErrors"] == []
        assert payload["account"]["status"] == "READY"
        rotated_ring = app.runtime.key_ring
        row = await _row(app.runtime, account_id)
        assert rotated_ring.needs_reencryption(row.imap_password_encrypted) is False

    # K1 can now be retired: K2 alone logs in.
    async with open_runtime(make_settings(secret_keys=k2)) as only_k2:
        assert "INBOX" in await _can_log_in(only_k2, account_id)

    # A key that never sealed anything decrypts nothing.
    async with open_runtime(make_settings(secret_keys=unrelated)) as wrong:
        with pytest.raises(DecryptionError):
            await _can_log_in(wrong, account_id)


async def test_reconnect_under_a_new_key_rewraps_the_smtp_secret_too(
    gql: GraphQLClient,
    new_user: NewUser,
    pymap: ImapServer,
    smtp_server: SmtpServer,
    runtime: Runtime,
    make_settings: MakeSettings,
    secret_key: str,
    http: httpx.AsyncClient,
) -> None:
    """reconnectMailAccount decrypts the stored SMTP password anyway and writes the row: it
    should seal that secret with the current key too, or retiring the old key later strands
    the account's sending."""
    k1, k2 = secret_key, generate_key()
    user = await new_user()
    account_id = await _add_account(gql.as_user(user.token), pymap, smtp=smtp_server.smtp_input())
    async with serve(make_settings(secret_keys=f"{k2},{k1}")) as app:
        client = GraphQLClient(http, app.graphql_url, user.token)
        data = await client.execute(
            RECONNECT, {"input": {"accountId": str(account_id), "imapPassword": pymap.password}}
        )
        assert data["reconnectMailAccount"]["userErrors"] == []
        row = await _row(app.runtime, account_id)
    assert row.smtp_password_encrypted is not None
    only_k2 = _ring(k2)
    assert only_k2.needs_reencryption(row.imap_password_encrypted) is False
    assert only_k2.needs_reencryption(row.smtp_password_encrypted) is False
