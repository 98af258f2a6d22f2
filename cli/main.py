"""`mailsync` subcommands. Configuration comes from MAILSYNC_* variables (see README)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from core.crypto import generate_key
from core.errors import ServiceError
from core.models import Plan
from core.settings import DatabaseSettings, Settings, SettingsError, load_settings


def _cmd_generate_key(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from core.migrate import upgrade

    upgrade(load_settings(DatabaseSettings).database_url)
    print("database is up to date")
    return 0


def _cmd_create_user(args: argparse.Namespace) -> int:
    from cli.admin import create_user

    settings = load_settings(DatabaseSettings)
    created = asyncio.run(
        create_user(
            settings.database_url,
            company=args.company,
            email=args.email,
            name=args.name,
            plan=Plan(args.plan) if args.plan else None,
            admin=args.admin,
            token_expires_in=_days(args.token_expires_days),
        )
    )
    what = "new company" if created.company_created else "company"
    print(f"{what}: {created.company.name} ({created.company.plan.value})")
    print(f"user: {created.user.email} ({created.user.role.value})")
    print(created.token)  # the last line: only the token
    return 0


def _days(days: float | None) -> timedelta | None:
    return timedelta(days=days) if days is not None else None


def _cmd_issue_token(args: argparse.Namespace) -> int:
    from cli.admin import issue_token

    settings = load_settings(DatabaseSettings)
    print(asyncio.run(issue_token(settings.database_url, args.email, _days(args.expires_days))))
    return 0


def _cmd_revoke_token(args: argparse.Namespace) -> int:
    """Revoke one token (read from stdin with ``-``) or every token of ``--email``."""
    from cli.admin import revoke

    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    if bool(token) == bool(args.email):
        print("mailsync: give a token or --email, not both", file=sys.stderr)
        return 2
    revoked = asyncio.run(revoke(load_settings(DatabaseSettings), token=token, email=args.email))
    if revoked == 0:
        print("mailsync: no such token", file=sys.stderr)
        return 1
    print(f"revoked {revoked} token{'' if revoked == 1 else 's'}")
    return 0


def _cmd_set_plan(args: argparse.Namespace) -> int:
    from cli.admin import set_plan

    changed = asyncio.run(set_plan(load_settings(Settings), args.company, Plan(args.plan)))
    print(f"{args.company} is now on {args.plan}")
    for account in changed:
        print(f"  {account.email_address}: {account.status.value}")
    return 0


def _configure_logging(quiet: bool = False) -> None:
    from core.logs import LogSettings, configure_logging

    configure_logging(load_settings(LogSettings), level="WARNING" if quiet else None)


def api_app() -> object:
    """The API app from the environment: what each `mailsync api --workers N` process
    serves (uvicorn starts them from this import string, each with its own pools)."""
    from api.app import create_app

    _configure_logging()
    return create_app(load_settings(Settings))


def _cmd_api(args: argparse.Namespace) -> int:
    from cli.serve import serve_app, serve_workers

    _configure_logging()
    settings = load_settings(Settings)
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    if args.workers > 1:
        serve_workers("cli.main:api_app", host=host, port=port, workers=args.workers)
        return 0
    from api.app import create_app

    serve_app(create_app(settings), host=host, port=port)
    return 0


async def _check_worker(redis_url: str) -> int:
    """For a container health check: 0 when a worker on this host renewed its heartbeat
    in the last 20 s (its event loop runs and it reaches Redis), else 1."""
    import socket

    from redis.asyncio import Redis

    from workers.leases import REDIS_FAULTS, live_workers

    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        beats = await live_workers(redis, host=socket.gethostname())
    except REDIS_FAULTS as exc:
        print(f"mailsync: cannot reach Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
    if not beats:
        print("mailsync: no live worker on this host", file=sys.stderr)
        return 1
    for beat in beats:
        print(f"worker pid {beat.get('pid')}: alive, {beat.get('jobs')} jobs running")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from workers.arq_worker import run_worker
    from workers.resilient import RedisOutage

    settings = load_settings(Settings)
    if args.check:
        return asyncio.run(_check_worker(settings.redis_url))
    _configure_logging(quiet=args.quiet)
    try:
        with contextlib.suppress(asyncio.CancelledError):  # arq cancels its main task on SIGINT
            asyncio.run(run_worker(settings, burst=args.burst))
    except RedisOutage as exc:
        print(f"mailsync: {exc}", file=sys.stderr)
        return 3  # for a supervisor: restart me (or page someone) once Redis is back
    return 0


def _cmd_dev(args: argparse.Namespace) -> int:
    from cli.dev import run_dev

    return run_dev(
        host=args.host,
        port=args.port,
        imap_port=args.imap_port,
        smtp_port=args.smtp_port,
        data_dir=args.data_dir,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailsync", description="Sync many mailboxes into one sales inbox."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plans = [p.value for p in Plan]

    sub = commands.add_parser("migrate", help="apply the database migrations")
    sub.set_defaults(run=_cmd_migrate)

    sub = commands.add_parser("generate-key", help="print a new MAILSYNC_SECRET_KEYS key")
    sub.set_defaults(run=_cmd_generate_key)

    sub = commands.add_parser(
        "create-user",
        help="create a user (and the company if needed); prints an API token last",
    )
    sub.add_argument("--company", required=True, help="company name")
    sub.add_argument("--email", required=True)
    sub.add_argument("--name", help="display name (default: the part before @)")
    sub.add_argument("--plan", choices=plans, help="plan of a new company (default ADVANCED)")
    sub.add_argument("--admin", action="store_true", help="make the user a company admin")
    sub.add_argument(
        "--token-expires-days", type=float, help="the token stops working after this many days"
    )
    sub.set_defaults(run=_cmd_create_user)

    sub = commands.add_parser("issue-token", help="a new API token for a user (printed)")
    sub.add_argument("--email", required=True)
    sub.add_argument("--expires-days", type=float, help="stops working after this many days")
    sub.set_defaults(run=_cmd_issue_token)

    sub = commands.add_parser(
        "revoke-token",
        help="revoke an API token (open websockets using it close within seconds)",
    )
    sub.add_argument("token", nargs="?", help="the token, or - to read it from stdin")
    sub.add_argument("--email", help="revoke every token of this user instead")
    sub.set_defaults(run=_cmd_revoke_token)

    sub = commands.add_parser(
        "set-plan",
        help="change a company's plan; accounts beyond a lower limit are paused, never deleted",
    )
    sub.add_argument("--company", required=True)
    sub.add_argument("--plan", required=True, choices=plans)
    sub.set_defaults(run=_cmd_set_plan)

    sub = commands.add_parser("api", help="serve GraphQL over HTTP and websockets")
    sub.add_argument("--host", help="default: MAILSYNC_HOST, else 127.0.0.1")
    sub.add_argument("--port", type=int, help="default: MAILSYNC_PORT, else 8000")
    sub.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port, one core each (default 1; see README, "
        '"API throughput and sizing")',
    )
    sub.set_defaults(run=_cmd_api)

    sub = commands.add_parser(
        "worker", help="run sync jobs and the sync scheduler (run as many as you like)"
    )
    sub.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    sub.add_argument(
        "--quiet", action="store_true", help="log warnings and errors only (as `dev` runs it)"
    )
    sub.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker on this host is alive (a container health check), else 1",
    )
    sub.set_defaults(run=_cmd_worker)

    sub = commands.add_parser(
        "dev",
        help="everything on one machine: embedded databases, demo IMAP and SMTP servers, the API",
    )
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--imap-port", type=int, default=1143, help="the demo IMAP server's port")
    sub.add_argument("--smtp-port", type=int, default=1587, help="the demo SMTP server's port")
    sub.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".mailsync"),
        help="the embedded databases' data, the demo token and keys (default .mailsync)",
    )
    sub.set_defaults(run=_cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except SettingsError as exc:
        print(f"mailsync: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"mailsync: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
