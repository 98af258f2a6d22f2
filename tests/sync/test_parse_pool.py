"""The parse processes of a worker: Ctrl-C is the worker's to handle, not theirs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from core.sync.parse_pool import MessageParser

RAW = b"Subject: Parsed elsewhere\r\nMessage-ID: <p@example.com>\r\n\r\nHello.\r\n"


def _ignores(pid: int, signum: int) -> bool:
    """Whether the process ignores ``signum`` (its SigIgn mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


async def test_a_parse_process_ignores_ctrl_c_and_keeps_working(
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    parser = MessageParser(1)
    try:
        [first] = await parser.parse([RAW])
        assert first.subject == "Parsed elsewhere"
        [pool_pid] = [
            child.pid
            for child in psutil.Process().children(recursive=True)
            if child.pid not in before and "spawn_main" in " ".join(child.cmdline())
        ]
        assert _ignores(pool_pid, signal.SIGINT)
        os.kill(pool_pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the whole group
        [again] = await parser.parse([RAW])
        assert again.subject == "Parsed elsewhere"
        assert psutil.Process(pool_pid).is_running()
    finally:
        parser.close()
    assert "KeyboardInterrupt" not in capfd.readouterr().err
