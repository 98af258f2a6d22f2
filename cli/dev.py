"""`mailsync dev`: the whole service on one machine, for a newcomer's first minute."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cli.demo_smtp import DemoServerError, demo_smtp_server
from cli.embedded import embedded_postgres, embedded_redis
from cli.serve import bind_listening_socket, serve_app
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
            raise DevStartError(f"the demo IMAP server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise DevStartError(f"the demo IMAP server did not listen on {host}:{port}")


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
        # Ctrl-C reaches the worker too: a short drain, well inside the wait below.
        "MAILSYNC_WORKER_DRAIN_SECONDS": "3",
    }
    process = subprocess.Popen(  # a fixed argv, no shell
        [sys.executable, "-m", "cli.main", "worker", "--quiet"], env=env
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
        # Not in the terminal's process group: Ctrl-C would stop it at once, while the
        # worker is still draining a sync against it. It is stopped after the worker.
        start_new_session=True,
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


def _banner(host: str, port: int, token: str, imap_port: int, smtp_port: int) -> str:
    url = f"http://{host}:{port}/graphql"
    login = f'username: "{DEMO_IMAP_USER}", password: "{DEMO_IMAP_PASSWORD}"'
    return f"""
mailsync is running.

  Sales Inbox     http://{host}:{port}/   (sign in with the API token below)
  GraphiQL        {url}
  Demo user       {DEMO_EMAIL} (admin of "{DEMO_COMPANY}", plan POWER)
  API token       {token}
                  (GraphiQL: Headers tab -> {{"Authorization": "Bearer {token}"}})
  Demo IMAP       127.0.0.1:{imap_port}, security NONE, user {DEMO_IMAP_USER}, \
password {DEMO_IMAP_PASSWORD}
  Demo SMTP       127.0.0.1:{smtp_port}, security NONE, the same login; what it accepts \
lands in the demo INBOX

Try in GraphiQL, one after the other:

  mutation {{
    addMailAccount(input: {{
      emailAddress: "{DEMO_IMAP_USER}@example.com"
      imap: {{host: "127.0.0.1", port: {imap_port}, security: NONE, {login}}}
      smtp: {{host: "127.0.0.1", port: {smtp_port}, security: NONE, {login}}}
    }}) {{
      account {{ id status isDefault folders {{ name role }} }}
      userErrors {{ code field message }}
    }}
  }}

  # The demo mail is old: pastSync ALL syncs all of it (the default is the last month).
  mutation {{
    startSync(input: {{accountId: "<the id above>", pastSync: ALL}}) {{
      account {{ status }} userErrors {{ code message }}
    }}
  }}

  # From the default account (the first one added); it arrives in the demo INBOX.
  mutation {{
    sendEmail(input: {{to: ["{DEMO_IMAP_USER}@example.com"], subject: "Hello from mailsync",
                       bodyText: "It works."}}) {{
      outgoing {{ status error }} userErrors {{ code message }}
    }}
  }}

  {{ inbox(first: 10) {{ edges {{ node {{ subject from {{ address }} folder {{ role }} }} }} }} }}

Ctrl-C stops everything.
"""


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM stop `dev` like Ctrl-C, so the embedded servers are shut down too."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _reserve_ports(host: str, ports: dict[str, tuple[int, str]]) -> dict[str, socket.socket]:
    """Bind every port first (so two of them cannot be the same, and a taken one is found
    before anything starts); the sockets, by name. ``ports``: name -> (port, make variable)."""
    held: dict[str, socket.socket] = {}
    try:
        for name, (port, variable) in ports.items():
            address = host if name == "the API" else "127.0.0.1"
            try:
                held[name] = bind_listening_socket(address, port)
            except OSError as exc:
                reason = (
                    "is in use" if exc.errno == errno.EADDRINUSE else f"failed ({exc.strerror})"
                )
                raise DevStartError(
                    f"{address}:{port} for {name} {reason}; choose another port, e.g. "
                    f"make run {variable}={port + 1}"
                ) from None
    except BaseException:
        for sock in held.values():
            sock.close()
        raise
    return held


class DevStartError(Exception):
    """`mailsync dev` cannot start (a port is taken, a demo server failed); the message is
    one line for the user."""


def run_dev(
    *, host: str, port: int, imap_port: int, smtp_port: int, data_dir: Path = DATA_DIR
) -> int:
    _interrupt_on_sigterm()
    try:
        _run(host, port, imap_port, smtp_port, data_dir)
    except (DevStartError, DemoServerError) as exc:
        print(f"mailsync: {exc}", file=sys.stderr)
        return 1
    print("mailsync stopped.")
    return 0


def _run(host: str, port: int, imap_port: int, smtp_port: int, data_dir: Path) -> None:
    from api.app import create_app

    sockets = _reserve_ports(
        host,
        {
            "the API": (port, "PORT"),
            "the demo IMAP server": (imap_port, "IMAP_PORT"),
            "the demo SMTP server": (smtp_port, "SMTP_PORT"),
        },
    )
    api_socket = sockets.pop("the API")
    for sock in sockets.values():  # the demo servers bind these again in a moment
        sock.close()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.callback(api_socket.close)
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
        stack.enter_context(
            demo_smtp_server(smtp_port, imap_port, DEMO_IMAP_USER, DEMO_IMAP_PASSWORD)
        )
        stack.enter_context(worker_process(settings))
        banner = _banner(host, port, token, imap_port, smtp_port)
        # Ctrl-C: uvicorn shuts down, then the stack stops the worker, the demo servers,
        # Redis and PostgreSQL. The banner waits until the API accepts connections.
        with contextlib.suppress(KeyboardInterrupt):
            serve_app(
                create_app(settings),
                host=host,
                port=port,
                log_level="warning",
                sock=api_socket,
                on_started=lambda: print(banner, flush=True),
            )
