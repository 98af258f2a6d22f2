"""Servers a fault test may stop, restart or flush: a private ``redis-server`` and a private
PostgreSQL cluster (``initdb`` + ``pg_ctl``), each on its own free loopback port and data
directory. The shared servers (6379, 5432) are never touched by these."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.app import free_port


def _wait_for_port(port: int, *, up: bool, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} in {seconds} s")


class PrivateRedis:
    """``redis-server`` without persistence: a restart loses every key, as a real restart
    of a cache-configured Redis does."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()  # as a crash or an OOM kill would: no goodbye to the clients
        process.wait(10)
        _wait_for_port(self.port, up=False)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def flushall(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "FLUSHALL"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    workdir = Path(tempfile.mkdtemp(prefix="mailsync-redis-"))
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_tool(name: str) -> str:
    """``initdb``/``pg_ctl`` from PATH, else from Debian's versioned directory (the
    postgresql package does not put them on PATH); a missing one fails the test."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise FileNotFoundError(f"{name} not found: install the postgresql package")
    return str(candidates[-1])  # the newest version


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    args = [_pg_tool(args[0]), *args[1:]]
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PrivatePostgres:
    """A throwaway cluster: trust authentication on loopback, its own port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        subprocess.run(
            _as_postgres(
                ["initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-N"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", str(self.data_dir), "-w", "-s", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off"
        self._pg_ctl("-l", str(self.workdir / "log"), "-o", options, "start")
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")
        _wait_for_port(self.port, up=False)

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    workdir = Path(tempfile.mkdtemp(prefix="mailsync-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    server = PrivatePostgres(workdir)
    server.init()
    server.start()
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
