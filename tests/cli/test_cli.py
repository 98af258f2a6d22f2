"""The `mailsync` command, run as a user runs it: a subprocess with MAILSYNC_* variables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.crypto import KeyRing
from core.identity.service import authenticate
from core.models import AccountStatus, Company, MailAccount, Plan, Role, User
from core.runtime import Runtime
from tests.support.factories import ADD_ACCOUNT, account_input, own_mailbox
from tests.support.graphql import GraphQLClient
from tests.support.mailservers import ImapServer

MAILSYNC = str(Path(sys.executable).with_name("mailsync"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update(values)
    return env


async def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [MAILSYNC, *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command", ["migrate", "generate-key", "create-user", "set-plan", "api", "dev"]
)
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [MAILSYNC, command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "usage: mailsync" in result.stdout


def test_generate_key_prints_a_usable_key() -> None:
    result = subprocess.run([MAILSYNC, "generate-key"], capture_output=True, text=True, check=True)
    key = result.stdout.strip()
    ring = KeyRing.from_settings((key,))
    assert ring.decrypt(ring.encrypt("secret", "aad"), "aad") == "secret"


async def test_missing_setting_fails_with_one_line_naming_it() -> None:
    result = await _run("migrate", env=_env())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mailsync: invalid configuration: MAILSYNC_DATABASE_URL is not set"
    ]


async def test_malformed_setting_fails_with_one_line_naming_it(database_url: str) -> None:
    result = await _run(
        "api",
        env=_env(
            MAILSYNC_DATABASE_URL=database_url,
            MAILSYNC_REDIS_URL="redis://127.0.0.1:6379/0",
            MAILSYNC_SECRET_KEYS="not-a-key",
        ),
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mailsync: invalid configuration: MAILSYNC_SECRET_KEYS")
    wrong_url = await _run("migrate", env=_env(MAILSYNC_DATABASE_URL="mysql://x"))
    [line] = wrong_url.stderr.strip().splitlines()
    assert line.startswith("mailsync: invalid configuration: MAILSYNC_DATABASE_URL")


async def test_migrate_is_idempotent(database_url: str) -> None:
    result = await _run("migrate", env=_env(MAILSYNC_DATABASE_URL=database_url))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


async def test_create_user_prints_a_working_token_last(runtime: Runtime, database_url: str) -> None:
    env = _env(MAILSYNC_DATABASE_URL=database_url)
    result = await _run(
        "create-user", "--company", "Initech", "--email", "Boss@Initech.com", "--admin", env=env
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("ms_") and " " not in token
    async with runtime.session_factory() as session:
        viewer = await authenticate(session, token)
        company = await session.scalar(select(Company).where(Company.name == "Initech"))
        emails = [u.email for u in await session.scalars(select(User))]
    assert viewer is not None and viewer.role is Role.ADMIN
    assert company is not None and company.plan is Plan.ADVANCED  # the default plan
    assert emails == ["Boss@initech.com"]  # the domain is normalised, the local part kept

    second = await _run(
        "create-user", "--company", "Initech", "--email", "rep@initech.com", env=env
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] != token
    duplicate = await _run(
        "create-user", "--company", "Initech", "--email", "rep@initech.com", env=env
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


async def test_set_plan_downgrade_pauses_newest_and_upgrade_resumes(
    runtime: Runtime,
    gql: GraphQLClient,
    dovecot: ImapServer,
    database_url: str,
    redis_server: str,
    secret_key: str,
) -> None:
    env = _env(MAILSYNC_DATABASE_URL=database_url)
    created = await _run(
        "create-user",
        "--company",
        "Globex",
        "--email",
        "hank@globex.com",
        "--plan",
        "POWER",
        env=env,
    )
    token = created.stdout.strip().splitlines()[-1]
    client = gql.as_user(token)
    for address in ("first@globex.com", "second@globex.com", "third@globex.com"):
        login = own_mailbox(dovecot)  # three accounts of one user: three mailboxes
        data = await client.execute(
            ADD_ACCOUNT, {"input": account_input(dovecot, address, **login)}
        )
        assert data["addMailAccount"]["userErrors"] == []

    full_env = _env(
        MAILSYNC_DATABASE_URL=database_url,
        MAILSYNC_REDIS_URL=redis_server,
        MAILSYNC_SECRET_KEYS=secret_key,
    )

    async def statuses() -> dict[str, AccountStatus]:
        async with runtime.session_factory() as session:
            rows = await session.scalars(select(MailAccount))
            return {a.email_address: a.status for a in rows}

    result = await _run("set-plan", "--company", "Globex", "--plan", "ADVANCED", env=full_env)
    assert result.returncode == 0, result.stderr
    assert await statuses() == {
        "first@globex.com": AccountStatus.READY,
        "second@globex.com": AccountStatus.PAUSED,
        "third@globex.com": AccountStatus.PAUSED,
    }
    result = await _run("set-plan", "--company", "Globex", "--plan", "PROFESSIONAL", env=full_env)
    assert result.returncode == 0, result.stderr
    assert await statuses() == {
        "first@globex.com": AccountStatus.READY,
        "second@globex.com": AccountStatus.READY,
        "third@globex.com": AccountStatus.PAUSED,
    }
    unknown = await _run("set-plan", "--company", "Nope", "--plan", "POWER", env=full_env)
    assert unknown.returncode == 1
    assert "No company named Nope" in unknown.stderr


async def test_api_workers_serve_one_port_from_several_processes(
    runtime: Runtime, database_url: str, redis_server: str, secret_key: str
) -> None:
    """`mailsync api --workers 2`: two processes answer on one port, each a full API (the
    token works in both), and SIGTERM stops them all."""
    import httpx
    import psutil

    from tests.support.app import free_port
    from tests.support.factories import make_user

    user = await make_user(runtime)
    port = free_port()
    env = _env(
        MAILSYNC_DATABASE_URL=database_url,
        MAILSYNC_REDIS_URL=redis_server,
        MAILSYNC_SECRET_KEYS=secret_key,
        MAILSYNC_LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(  # noqa: ASYNC220  # started once; the waits are in threads
        [MAILSYNC, "api", "--port", str(port), "--workers", "2"], env=env
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            children = [  # not multiprocessing's resource tracker
                child
                for child in psutil.Process(process.pid).children()
                if "spawn_main" in " ".join(child.cmdline())
            ]
            for _ in range(20):  # fresh connections: the kernel hands them to either process
                async with httpx.AsyncClient(timeout=10) as fresh:
                    response = await fresh.post(
                        f"http://127.0.0.1:{port}/graphql",
                        json={"query": "{ me { id } }"},
                        headers={"authorization": f"Bearer {user.token}"},
                    )
                assert response.status_code == 200, response.text
                assert response.json()["data"]["me"]["id"] == str(user.id)
        assert len(children) == 2
        assert all(child.is_running() for child in children)
    finally:
        process.terminate()
        code = await asyncio.to_thread(process.wait, 30)
    assert code == 0

    def gone(child: psutil.Process) -> bool:
        try:
            return child.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert all(gone(child) for child in children)
