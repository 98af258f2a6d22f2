"""`mailsync dev`: the whole service on one machine, for a newcomer's first minute."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cli.embedded import embedded_postgres, embedded_redis
from core.crypto import generate_key
from core.db import create_engine, create_session_factory, session_scope
from core.identity import repository as identity_repository
from core.identity.service import authenticate, create_user, issue_token
from core.migrate import upgrade
from core.models import Plan
from core.settings import Settings, load_settings

DATA_DIR = Path(".mailsync")
DEMO_COMPANY = "Demo Company"
DEMO_EMAIL = "demo@example.com"
DEMO_IMAP_USER = "demouser"
DEMO_IMAP_PASSWORD = "demopass"  # pymap's built-in demo login, not a secret


def _secret_keys(data_dir: Path) -> str:
    """MAILSYNC_SECRET_KEYS, else a key generated once and kept in ``data_dir``."""
    configured = os.environ.get("MAILSYNC_SECRET_KEYS")
    if configured:
        return configured
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(generate_key() + "\n")
        key_file.chmod(0o600)
    return key_file.read_text().strip()


async def _ensure_demo_user(database_url: str, saved_token: str | None) -> str:
    """The demo user's token; creates the company, the user and a token when missing."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            user = await identity_repository.get_user_by_email(session, DEMO_EMAIL)
            if user is None:
                created = await create_user(
                    session,
                    company_name=DEMO_COMPANY,
                    email=DEMO_EMAIL,
                    name="Demo User",
                    plan=Plan.POWER,
                    admin=True,
                )
                return created.token
            if saved_token and await authenticate(session, saved_token) is not None:
                return saved_token
            return await issue_token(session, user)
    finally:
        await engine.dispose()


def _demo_token(database_url: str, token_file: Path) -> str:
    """The token is kept in ``token_file`` (only its hash is in the database)."""
    saved = token_file.read_text().strip() if token_file.exists() else None
    token = asyncio.run(_ensure_demo_user(database_url, saved))
    if token != saved:
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
    return token


def _wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo IMAP server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the demo IMAP server did not listen on {host}:{port}")


@contextlib.contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`mailsync worker` beside the API, configured like it."""
    env = {
        **os.environ,
        "MAILSYNC_DATABASE_URL": settings.database_url,
        "MAILSYNC_REDIS_URL": settings.redis_url,
        "MAILSYNC_SECRET_KEYS": ",".join(settings.secret_keys),
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
        "MAILSYNC_MAIL_PORTS": "any",
    }
    process = subprocess.Popen(  # a fixed argv, no shell
        [sys.executable, "-m", "cli.main", "worker"], env=env
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def demo_imap_server(port: int) -> Iterator[int]:
    """pymap with its demo mailbox on 127.0.0.1:``port`` (in memory, plain IMAP)."""
    pymap = Path(sys.executable).with_name("pymap")
    process = subprocess.Popen(  # noqa: S603  # a fixed argv, no shell
        [str(pymap), "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict", "--demo-data"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port("127.0.0.1", port, 20, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


def _banner(host: str, port: int, token: str, imap_port: int) -> str:
    url = f"http://{host}:{port}/graphql"
    return f"""
mailsync is running.

  GraphiQL        {url}
  Demo user       {DEMO_EMAIL} (admin of "{DEMO_COMPANY}", plan POWER)
  API token       {token}
                  (GraphiQL: Headers tab -> {{"Authorization": "Bearer {token}"}})
  Demo IMAP       127.0.0.1:{imap_port}, security NONE, user {DEMO_IMAP_USER},
                  password {DEMO_IMAP_PASSWORD}

Try in GraphiQL:
  mutation {{
    addMailAccount(input: {{
      emailAddress: "demouser@example.com"
      imap: {{host: "127.0.0.1", port: {imap_port}, security: NONE,
             username: "{DEMO_IMAP_USER}", password: "{DEMO_IMAP_PASSWORD}"}}
    }}) {{
      account {{ id emailAddress status isDefault folders {{ name role }} }}
      userErrors {{ code field message }}
    }}
  }}

Ctrl-C stops everything.
"""


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM stop `dev` like Ctrl-C, so the embedded servers are shut down too."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_dev(*, host: str, port: int, imap_port: int) -> int:
    from api.app import create_app
    from cli.serve import serve_app

    _interrupt_on_sigterm()
    data_dir = DATA_DIR.resolve()
    data_dir.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = os.environ.get("MAILSYNC_DATABASE_URL") or stack.enter_context(
            embedded_postgres(data_dir / "postgres")
        )
        redis_url = os.environ.get("MAILSYNC_REDIS_URL") or stack.enter_context(
            embedded_redis(data_dir / "redis.db")
        )
        settings = load_settings(
            Settings,
            database_url=database_url,
            redis_url=redis_url,
            secret_keys=_secret_keys(data_dir),
            allow_private_hosts=True,  # the demo IMAP server is on loopback
            mail_ports="any",
        )
        upgrade(settings.database_url)
        token = _demo_token(settings.database_url, data_dir / "demo-token")
        stack.enter_context(demo_imap_server(imap_port))
        stack.enter_context(worker_process(settings))
        print(_banner(host, port, token, imap_port), flush=True)
        # Ctrl-C: uvicorn shuts down, then the stack stops the worker, pymap, Redis, PostgreSQL.
        with contextlib.suppress(KeyboardInterrupt):
            serve_app(create_app(settings), host=host, port=port, log_level="warning")
    print("mailsync stopped.")
    return 0
