"""CI's smoke test of `make run` as a newcomer runs it, with no database configured.

    python .ci/smoke_make_run.py VENV PYTHON

Runs `make run VENV=... PYTHON=...` on free ports with a fresh data directory and no
MAILSYNC_* variables (so the embedded PostgreSQL and Redis start), then checks that GraphiQL
answers, that the banner's demo account is added and its first sync brings the demo mail
into the inbox, and that Ctrl-C stops everything with `mailsync stopped.`. Exit 0 when all
of that holds; otherwise 1, with the output of `make run`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BANNER_END = "Ctrl-C stops everything."
DEADLINE_SECONDS = 300  # the install is done before; starting and one sync take seconds


class SmokeFailure(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _until(what: str, check: Any, deadline: float) -> Any:
    while not (result := check()):
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out waiting for {what}")
        time.sleep(0.5)
    return result


def _documents(banner: str) -> list[str]:
    """The GraphQL documents the banner suggests, in order."""
    section = banner.split("Try in GraphiQL", 1)[1].split(BANNER_END, 1)[0]
    blocks = [b for b in re.split(r"\n\s*\n", section.split("\n", 1)[1]) if b.strip()]
    return [b.strip() for b in blocks]


def _check(output: Path, process: subprocess.Popen[bytes], api_port: int, data_dir: Path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS

    def banner() -> str | None:
        if process.poll() is not None:
            raise SmokeFailure(f"make run exited with {process.returncode} before its banner")
        text = output.read_text(errors="replace")
        return text if BANNER_END in text else None

    text = _until("the banner", banner, deadline)
    token = re.search(r"API token\s+(ms_\S+)", text)
    if token is None:
        raise SmokeFailure("the banner shows no API token")
    url = f"http://127.0.0.1:{api_port}/graphql"
    add, start, _send, inbox = _documents(text)

    with httpx.Client(headers={"authorization": f"Bearer {token[1]}"}, timeout=30) as http:
        page = http.get(url, headers={"accept": "text/html"})
        if page.status_code != 200 or "graphiql" not in page.text.lower():
            raise SmokeFailure(f"GraphiQL did not answer at {url}: {page.status_code}")

        def run(document: str) -> dict[str, Any]:
            body: dict[str, Any] = http.post(url, json={"query": document}).json()
            if "errors" in body:
                raise SmokeFailure(f"GraphQL errors: {body['errors']}")
            data: dict[str, Any] = body["data"]
            return data

        added = run(add)["addMailAccount"]
        if added["userErrors"] or added["account"]["status"] != "READY":
            raise SmokeFailure(f"the demo account was not added: {added}")
        account_id = added["account"]["id"]
        started = run(start.replace("<the id above>", account_id))["startSync"]
        if started["userErrors"]:
            raise SmokeFailure(f"startSync: {started['userErrors']}")
        status = f'{{ mailAccount(id: "{account_id}") {{ status }} }}'
        _until(
            "the first sync",
            lambda: run(status)["mailAccount"]["status"] == "ACTIVE",
            deadline,
        )
        if not run(inbox)["inbox"]["edges"]:
            raise SmokeFailure("the first sync brought no demo mail into the inbox")
        print(f"smoke: GraphiQL answers at {url}; the demo account synced its mail")

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        raise SmokeFailure("make run did not stop within 60 s of Ctrl-C") from None
    # make itself ends by the SIGINT, as in a terminal; what it ran must have stopped cleanly.
    if code not in (0, -signal.SIGINT) or "mailsync stopped." not in output.read_text():
        raise SmokeFailure(f"make run stopped with {code} and without `mailsync stopped.`")
    if (data_dir / "postgres" / "postmaster.pid").exists():
        raise SmokeFailure("the embedded PostgreSQL still runs after Ctrl-C")


def _stop_leftover_postgres(data_dir: Path) -> None:
    """After a failure: the embedded server must not outlive its deleted data directory."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown


def main(venv: str, python: str) -> int:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    with tempfile.TemporaryDirectory(prefix="mailsync-smoke-") as tmp:
        output = Path(tmp) / "output"
        ports = _free_port(), _free_port(), _free_port()
        command = [
            "make",
            "--no-print-directory",
            "run",
            f"VENV={venv}",
            f"PYTHON={python}",
            f"PORT={ports[0]}",
            f"IMAP_PORT={ports[1]}",
            f"SMTP_PORT={ports[2]}",
            f"DATA_DIR={Path(tmp) / 'data'}",
        ]
        with output.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603  # our own command line
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as under a terminal
            )
        try:
            _check(output, process, ports[0], Path(tmp) / "data")
        except SmokeFailure as failure:
            print(f"smoke: FAILED: {failure}\n--- make run's output:", file=sys.stderr)
            print(output.read_text(errors="replace"), file=sys.stderr)
            return 1
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            _stop_leftover_postgres(Path(tmp) / "data" / "postgres")
    print(f"smoke: make run passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
