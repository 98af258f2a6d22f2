"""Logging for every process: text for a terminal, one JSON object per line for a collector.

``MAILSYNC_LOG_FORMAT`` (``text`` | ``json``) and ``MAILSYNC_LOG_LEVEL`` choose; the API's
request id and a worker job's account and try travel in context variables, so any line
logged while serving them carries them without being passed around.

Secrets never reach a line: logins are redacted where they are logged (core/mail/imap.py)
and the access log keeps the path of a request, never its query string (an OAuth callback's
one-time code travels there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["text", "json"]
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# What the current request or job is; set by api/request_id.py and the worker's job hooks.
request_id: ContextVar[str | None] = ContextVar("mailsync_request_id", default=None)
job_context: ContextVar[dict[str, object] | None] = ContextVar("mailsync_job", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class LogSettings(BaseSettings):
    """Read on its own (every command logs, not every command has the full settings)."""

    model_config = SettingsConfigDict(
        env_prefix="MAILSYNC_", env_file=".env", extra="ignore", frozen=True
    )

    log_format: LogFormat = "text"
    log_level: str = Field(default="INFO")

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in _LEVELS:
            raise ValueError(f"must be one of {', '.join(_LEVELS)}")
        return value


@contextlib.contextmanager
def job_logging(**fields: object) -> Iterator[None]:
    """Lines logged inside carry ``fields`` (``account_id``, ``job_try``) in JSON."""
    token = job_context.set({**(job_context.get() or {}), **fields})
    try:
        yield
    finally:
        job_context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the request id and job fields onto each record (text lines show them too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job = job_context.get()
        return True


class AccessLogPaths(logging.Filter):
    """uvicorn's access line without the query string: ``/oauth/callback?code=…`` would
    otherwise write a one-time authorization code (and any future secret) to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            record.args = (*args[:2], path, *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and whatever context holds."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        job = getattr(record, "job", None)
        if job:
            line.update(job)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            args = record.args
            if len(args) == 5:
                status = args[4]
                line.update(client=str(args[0]), method=args[1], path=args[2], status=status)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = []
        rid = getattr(record, "request_id", None)
        if rid:
            extras.append(f"request_id={rid}")
        job = getattr(record, "job", None)
        if job:
            extras.extend(f"{key}={value}" for key, value in job.items())
        return f"{text} [{' '.join(extras)}]" if extras else text


def configure_logging(
    settings: LogSettings | None = None, *, level: str | None = None, stream: Any = None
) -> None:
    """Route every logger (uvicorn's and arq's included) to one stderr handler in the chosen
    format; ``level`` overrides the setting (``--quiet``)."""
    settings = settings or LogSettings()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    # uvicorn's and arq's loggers: no handlers of their own, so every line goes through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
        named.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogPaths) for f in access.filters):
        access.addFilter(AccessLogPaths())
