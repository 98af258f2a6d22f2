"""`mailsync worker` as a separate process, as an operator runs it, for fault tests that stop
its Redis, signal it or kill it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings

MAILSYNC = str(Path(sys.executable).with_name("mailsync"))


def worker_environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """MAILSYNC_* variables for ``settings`` (with ``overrides`` on top)."""
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "secret_keys": ",".join(settings.secret_keys),
        "allow_private_hosts": settings.allow_private_hosts,
        "tls_ca_file": settings.tls_ca_file or "",
        "mail_timeout_seconds": settings.mail_timeout_seconds,
        "mail_ports": settings.mail_ports,
        "parse_processes": 0,
    }
    values.update(overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    env.update({f"MAILSYNC_{k.upper()}": str(v) for k, v in values.items()})
    return env


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait(self, seconds: float) -> int:
        return await asyncio.wait_for(self.process.wait(), seconds)

    async def wait_for_log(self, text: str, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while text not in self.output():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the worker never logged {text!r}:\n{self.output()[-3000:]}")
            if not self.alive:
                code = self.process.returncode
                raise AssertionError(f"the worker exited ({code}):\n{self.output()[-3000:]}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def worker_process(
    settings: Settings, workdir: Path, *args: str, **overrides: Any
) -> AsyncIterator[WorkerProcess]:
    """A running `mailsync worker`; killed on the way out if it still runs."""
    log = workdir / f"worker-{os.urandom(3).hex()}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            MAILSYNC,
            "worker",
            *args,
            env=worker_environment(settings, **overrides),
            cwd=workdir,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    worker = WorkerProcess(process, log)
    try:
        yield worker
    finally:
        if worker.alive:
            process.kill()
            await process.wait()
