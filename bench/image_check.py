"""`make bench BENCH=image`: build the container image and sync a mailbox through it.

What a team deploying mailsync does, on this machine: build the image from `Containerfile`
unchanged, run `migrate`, `create-user`, `api` and `worker` from it against the host's
PostgreSQL and Redis, add a Dovecot account over the API and wait until its messages are in
the inbox. Prints the build time, the image size, each step's time and the containers'
memory.

Needs podman (Debian: podman, runc; crun fails on these machines' cgroups, so runc is
used) and, when the Containerfile's base image is not in podman's store and no registry is
reachable, mmdebstrap: the base is then built from Debian's packages and tagged as the
Containerfile's base (this machine's extra CA certificates go into it, so the build can
reach PyPI through the sandbox's proxy). Not part of `make test`: a first build takes
several minutes.

    python -m bench.image_check [--messages 200] [--keep-image]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BenchError,
    database_server,
    database_url,
    load_average,
    redis_server,
    run_main,
    say,
    sql,
)

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/mailsync:bench"
PODMAN = ["podman", "--runtime", "runc"]


def _limits() -> list[str]:
    """podman's default rlimits exceed this sandbox's hard limits (runc then fails with
    "error setting rlimit"): pass the process's own, explicitly."""
    import resource

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Raising NPROC to the hard limit is refused here too: 4,096 is plenty for the app.
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


LIMITS = _limits()


def podman(*args: str, check: bool = True, capture: bool = True) -> str:
    result = subprocess.run(
        [*PODMAN, *args], capture_output=capture, text=True, check=False, timeout=1800
    )
    if check and result.returncode != 0:
        raise BenchError(f"podman {' '.join(args[:2])} failed:\n{(result.stderr or '')[-3000:]}")
    return (result.stdout or "").strip()


def ensure_base_image() -> str:
    """The Containerfile's base in podman's store: pulled if a registry answers, else built
    with mmdebstrap from Debian's packages (the same bookworm, minbase)."""
    if subprocess.run([*PODMAN, "image", "exists", BASE_IMAGE], check=False).returncode == 0:
        return "already in podman's store"
    pulled = subprocess.run(
        [*PODMAN, "pull", "--quiet", BASE_IMAGE], capture_output=True, check=False, timeout=120
    )
    if pulled.returncode == 0:
        return "pulled"
    if shutil.which("mmdebstrap") is None:
        raise BenchError("no registry and no mmdebstrap: apt-get install mmdebstrap")
    extra_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    hooks = ['--customize-hook=mkdir -p "$1/usr/local/share/ca-certificates"']
    hooks += [f"--customize-hook=copy-in {ca} /usr/local/share/ca-certificates" for ca in extra_cas]
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "base.tar"
        started = time.monotonic()
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--quiet", *hooks, "bookworm", str(tarball)],
            check=True,
            timeout=1800,
        )
        podman("import", str(tarball), BASE_IMAGE)
    return (
        f"built with mmdebstrap in {time.monotonic() - started:.0f} s ({len(extra_cas)} extra CAs)"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def socket_mounts(*urls: str) -> list[str]:
    """Embedded servers (no MAILSYNC_TEST_* URL) listen on unix sockets: mount their
    directories at the same path, so the same URLs work inside the container."""
    from urllib.parse import parse_qs, unquote, urlsplit

    mounts: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        paths = parse_qs(parts.query).get("host", [])
        if parts.scheme == "unix":
            paths.append(str(Path(unquote(parts.path)).parent))
        for path in paths:
            if path.startswith("/"):
                mounts += ["-v", f"{path}:{path}"]
    return mounts


def container_env(db_url: str, redis_url: str, key: str, **extra: str) -> list[str]:
    mounts = socket_mounts(db_url, redis_url)
    values = {
        "MAILSYNC_DATABASE_URL": db_url,
        "MAILSYNC_REDIS_URL": redis_url,
        "MAILSYNC_SECRET_KEYS": key,
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",  # Dovecot on the host's loopback
        "MAILSYNC_MAIL_PORTS": "any",
        **extra,
    }
    return mounts + [arg for name, value in values.items() for arg in ("-e", f"{name}={value}")]


def run_once(env: list[str], *command: str) -> tuple[str, float]:
    started = time.monotonic()
    out = podman("run", "--rm", "--network", "host", *LIMITS, *env, IMAGE, *command)
    return out, time.monotonic() - started


def memory_of(name: str) -> str:
    stats = podman("stats", "--no-stream", "--format", "json", name, check=False)
    try:
        parsed: Any = json.loads(stats)
        return str(parsed[0].get("mem_usage") or parsed[0].get("MemUsage"))
    except (ValueError, IndexError, KeyError, AttributeError):
        return "unknown"


async def sync_through_the_api(
    api_url: str, token: str, server: Any, username: str, messages: int
) -> tuple[float, float]:
    """(seconds until addMailAccount answered, seconds from startSync until the inbox
    holds every message)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:

        async def gql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            response = await http.post(
                f"{api_url}/graphql", json={"query": query, "variables": variables}
            )
            body: dict[str, Any] = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise BenchError(f"GraphQL failed: {response.status_code} {body}")
            data: dict[str, Any] = body["data"]
            return data

        started = time.monotonic()
        added = await gql(
            "mutation($i: AddMailAccountInput!) { addMailAccount(input: $i) "
            "{ account { id } userErrors { code message } } }",
            {
                "i": {
                    "emailAddress": username.replace("example.test", "example.com"),
                    "imap": {
                        "host": "127.0.0.1",
                        "port": server.port,
                        "security": "NONE",
                        "username": username,
                        "password": server.password,
                    },
                }
            },
        )
        payload = added["addMailAccount"]
        if payload["userErrors"]:
            raise BenchError(f"addMailAccount: {payload['userErrors']}")
        added_in = time.monotonic() - started
        account_id = payload["account"]["id"]
        started = time.monotonic()
        begun = await gql(
            "mutation($i: StartSyncInput!) { startSync(input: $i) { userErrors { code } } }",
            {"i": {"accountId": account_id, "labels": ["INBOX"], "pastSync": "ALL"}},
        )
        if begun["startSync"]["userErrors"]:
            raise BenchError(f"startSync: {begun['startSync']['userErrors']}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            data = await gql("{ inbox(first: 1) { totalCount } }", {})
            if data["inbox"]["totalCount"] >= messages:
                return added_in, time.monotonic() - started
            await asyncio.sleep(0.2)
        raise BenchError(f"the inbox did not reach {messages} messages in 300 s")


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def make_messages(count: int) -> list[tuple[bytes, datetime]]:
    now = datetime.now(UTC)
    return [
        (
            (
                f"From: Ann <ann@example.com>\r\nTo: box@example.test\r\n"
                f"Subject: image check {i}\r\n"
                f"Message-ID: <img{i}.{uuid.uuid4().hex}@example.com>\r\n"
                f"Date: {now:%a, %d %b %Y %H:%M:%S +0000}\r\n\r\nHello number {i}.\r\n"
            ).encode(),
            now,
        )
        for i in range(count)
    ]


def run(args: argparse.Namespace) -> int:
    from core.crypto import generate_key
    from tests.support.imap_admin import ImapAdmin
    from tests.support.mailservers import start_dovecot

    if shutil.which("podman") is None:
        raise BenchError("podman is not installed: apt-get install podman runc")
    say(f"load average {load_average()}")
    say(f"base image {BASE_IMAGE}: {ensure_base_image()}")
    started = time.monotonic()
    podman(
        "build",
        "--network",
        "host",
        *LIMITS,
        "-t",
        IMAGE,
        "-f",
        "Containerfile",
        str(ROOT),
        capture=not args.verbose,
    )
    say(f"image built in {time.monotonic() - started:.0f} s")
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}")
    say(f"image size {int(size) / 1e6:.0f} MB")

    key = generate_key()
    names: list[str] = []
    with (
        database_server() as (server_url, _),
        redis_server() as (redis_url, _),
        tempfile.TemporaryDirectory() as tmp,
    ):
        name = f"mailsync_image_{uuid.uuid4().hex[:10]}"
        asyncio.run(sql(server_url, f'CREATE DATABASE "{name}"'))
        db_url = database_url(server_url, name)
        dovecot = start_dovecot(Path(tmp))
        try:
            env = container_env(db_url, redis_url, key)
            _, seconds = run_once(env, "migrate")
            say(f"migrate in {seconds:.1f} s")
            out, seconds = run_once(
                env, "create-user", "--company", "Image", "--email", "ann@image.example.com"
            )
            token = out.splitlines()[-1]
            say(f"create-user in {seconds:.1f} s")
            username = f"image-{uuid.uuid4().hex[:6]}@example.test"
            dovecot.add_user(username, dovecot.password)
            admin = ImapAdmin(dovecot, username, dovecot.password)
            asyncio.run(admin.append_many("INBOX", make_messages(args.messages)))
            port = free_port()
            for role in ("api", "worker"):
                names.append(f"mailsync-bench-{role}-{uuid.uuid4().hex[:6]}")
                podman(
                    "run",
                    "-d",
                    "--rm",
                    "--name",
                    names[-1],
                    "--network",
                    "host",
                    *LIMITS,
                    *container_env(
                        db_url, redis_url, key, MAILSYNC_PORT=str(port), MAILSYNC_HOST="127.0.0.1"
                    ),
                    IMAGE,
                    role,
                )
            api_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(
                        "the API container did not become ready in 60 s:\n"
                        + podman("logs", names[0], check=False)
                    )
                time.sleep(0.3)
            added, synced = asyncio.run(
                sync_through_the_api(api_url, token, dovecot, username, args.messages)
            )
            say(f"addMailAccount through the image's API in {added:.2f} s")
            say(f"{args.messages} messages synced by the image's worker in {synced:.2f} s")
            for container in names:
                say(f"{container}: memory {memory_of(container)}")
            logs = subprocess.run(
                [*PODMAN, "logs", names[1]], capture_output=True, text=True, check=False
            ).stderr
            lines = [line for line in logs.splitlines() if line.strip()]
            parsed = sum(1 for line in lines if _is_json(line))
            say(f"worker log: {len(lines)} lines, {parsed} of them JSON objects")
            if parsed != len(lines):
                raise BenchError("the worker wrote lines that are not JSON:\n" + logs[-2000:])
        finally:
            for container in names:
                podman("stop", "--time", "10", container, check=False)
            dovecot.stop()
            asyncio.run(sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if not args.keep_image:
        podman("rmi", IMAGE, check=False)
    say("image check passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--keep-image", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="show the build's output")
    args = parser.parse_args()
    os.chdir(ROOT)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
