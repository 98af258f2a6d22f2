from __future__ import annotations

import pytest

from core.crypto import generate_key
from core.settings import DatabaseSettings, Settings, SettingsError, load_settings

VALID = {
    "database_url": "postgresql+asyncpg://postgres@127.0.0.1/db",
    "redis_url": "redis://127.0.0.1:6379/0",
}


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEYS", "ALLOW_PRIVATE_HOSTS", "GRAPHIQL"):
        monkeypatch.delenv(f"MAILSYNC_{name}", raising=False)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def test_defaults_are_production_safe() -> None:
    settings = load_settings(Settings, **VALID, secret_keys=generate_key())
    assert settings.allow_private_hosts is False
    assert settings.graphiql is True
    assert settings.mail_timeout_seconds == 15


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("MAILSYNC_DATABASE_URL", VALID["database_url"])
    monkeypatch.setenv("MAILSYNC_REDIS_URL", VALID["redis_url"])
    monkeypatch.setenv("MAILSYNC_SECRET_KEYS", f"{new}, {old}")
    monkeypatch.setenv("MAILSYNC_ALLOW_PRIVATE_HOSTS", "true")
    monkeypatch.setenv("MAILSYNC_GRAPHIQL", "false")
    settings = load_settings(Settings)
    assert settings.secret_keys == (new, old)
    assert settings.allow_private_hosts is True and settings.graphiql is False
    ring = settings.key_ring
    sealed_with_old = type(ring)((ring.keys[1],)).encrypt("pw", "aad")
    assert ring.decrypt(sealed_with_old, "aad") == "pw"  # rotation: old keys still decrypt


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"secret_keys": generate_key(), "redis_url": None}, "MAILSYNC_REDIS_URL is not set"),
        ({"secret_keys": "short"}, "MAILSYNC_SECRET_KEYS"),
        ({"secret_keys": ""}, "MAILSYNC_SECRET_KEYS"),
        ({"secret_keys": generate_key(), "database_url": "postgres://x"}, "MAILSYNC_DATABASE_URL"),
        ({"secret_keys": generate_key(), "redis_url": "http://x"}, "MAILSYNC_REDIS_URL"),
        ({"secret_keys": generate_key(), "graphiql": "maybe"}, "MAILSYNC_GRAPHIQL"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(
    overrides: dict[str, object], expected: str
) -> None:
    values = {**VALID, **overrides}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, **values)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_database_commands_need_only_the_database_url() -> None:
    assert load_settings(DatabaseSettings, database_url=VALID["database_url"]).database_url
