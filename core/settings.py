"""Configuration from ``MAILSYNC_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.crypto import KeyRing, parse_keys
from core.oauth.settings import OAuthSettings


class SettingsError(Exception):
    """A missing or malformed setting; ``str()`` is one line naming the variable."""


class DatabaseSettings(BaseSettings):
    """What commands that only touch PostgreSQL need (`migrate`, `create-user`)."""

    model_config = SettingsConfigDict(
        env_prefix="MAILSYNC_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(description="postgresql+asyncpg://user@host:5432/db")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must start with postgresql+asyncpg://")
        return value


class Settings(DatabaseSettings, OAuthSettings):
    model_config = DatabaseSettings.model_config  # not the mixin's (it has no env prefix)

    redis_url: str = Field(description="redis://host:6379/0")
    secret_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        description="comma-separated keys from `mailsync generate-key`; the first encrypts"
    )
    allow_private_hosts: bool = False
    graphiql: bool = True
    # Seconds allowed for connecting to and logging in to a mail server.
    mail_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    # Seconds an IMAP server that accepted the connection has to send its greeting: one
    # that never greets is given up on soon, and said so, not after the whole timeout.
    mail_greeting_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # Caps on what an IMAP server may send (README, "Hostile mail servers"): a literal (a
    # message body, a header) announced larger, or a line outside literals longer, is
    # refused at once and the connection dropped. A UID SEARCH of a million UIDs is ~8 MB.
    imap_max_literal_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    imap_max_line_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    # Messages larger than this (by RFC822.SIZE, read before any body) are stored with their
    # headers only and marked as not downloaded. Fetching and parsing one costs about 7x its
    # size at the peak (worker and parse process): 10 MB keeps a worker within 300 MB.
    max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024)
    # Folders kept per account from the server's LIST (INBOX always): the rest are ignored,
    # and the account's lastError says how many.
    max_folders_per_account: int = Field(default=1000, ge=10, le=100_000)
    # A PEM bundle trusted in addition to the system CAs (a company's own mail CA, tests).
    tls_ca_file: str | None = None
    credential_checks_per_minute: int = Field(default=10, ge=1)
    # PostgreSQL connections per process: at most db_pool_size + db_max_overflow
    # (README, "Connection sizing"). Overflow connections are closed when returned.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    # How often each syncing account is synced; failures back off from this.
    sync_interval_seconds: float = Field(default=60.0, gt=0)
    # Without CONDSTORE, flag changes are found by scanning all flags at most this often.
    flag_scan_interval_seconds: float = Field(default=300.0, ge=0)
    # Processes per worker that parse fetched mail while the worker fetches and writes
    # (0: parse in the worker itself; 1 measured ~25 % faster first syncs on 2 cores).
    parse_processes: int = Field(default=1, ge=0, le=32)
    # Messages each mail account may send per hour (sendEmail and sendAutomatedEmail).
    send_rate_per_hour: int = Field(default=100, ge=1)
    # SMTP attempts per message for temporary failures (4xx, connection faults); the wait
    # before the next attempt starts at send_retry_seconds and doubles each time.
    send_max_attempts: int = Field(default=5, ge=1, le=20)
    send_retry_seconds: float = Field(default=30.0, gt=0)
    # What one API request may ask for (README, "Security"): checked before any work.
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    max_query_chars: int = Field(default=20_000, ge=100)
    query_cost_limit: int = Field(default=40_000, ge=100)
    graphql_timeout_seconds: float = Field(default=60.0, gt=0)
    # Per API process: websockets one user may hold open, and subscriptions on each.
    websockets_per_user: int = Field(default=10, ge=1)
    subscriptions_per_socket: int = Field(default=20, ge=1)
    # How often an open websocket checks that its token is still valid.
    websocket_auth_recheck_seconds: float = Field(default=30.0, gt=0)
    # The ports mail servers may be on ("any": every port, for development).
    mail_ports: str = "25,465,587,143,993,2525"
    # The most a sendEmail's attachments may add up to (checked while they stream in).
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Minutes-long life of an attachment's signed downloadUrl, in seconds.
    attachment_link_seconds: int = Field(default=600, ge=10, le=86_400)
    # Seconds a request waits for a free database connection before UNAVAILABLE.
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # HTTP requests one API process serves at once; one beyond waits for a slot at most
    # max_queue_seconds, then is answered 503 with Retry-After (README, "API throughput
    # and sizing"). Health, metrics and websockets are not counted.
    max_in_flight: int = Field(default=10, ge=1)  # the default pool: 10, no overflow
    max_queue_seconds: float = Field(default=1.0, ge=0, le=30)
    shed_retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    # Real time (IMAP IDLE on INBOX; README, "Real time"). idle_enabled=false: polling only.
    idle_enabled: bool = True
    # Accounts one worker process watches at most (one IMAP connection each).
    idle_per_worker: int = Field(default=500, ge=0)
    # A worker's hold on its watchers; a dead worker's are taken over once it runs out.
    idle_lease_seconds: float = Field(default=15.0, ge=2, le=600)
    # IDLE is re-issued this often (RFC 2177: before the server's 30-minute timeout).
    idle_renew_seconds: float = Field(default=25 * 60.0, gt=0, le=29 * 60)
    # A server must answer DONE (and SELECT, NOOP) within this, else the connection is dead.
    idle_answer_seconds: float = Field(default=10.0, gt=0, le=120)
    # Pushes arriving this close together make one sync request.
    idle_debounce_seconds: float = Field(default=0.05, ge=0, le=10)
    # A worker that cannot reach Redis retries with backoff; after this many seconds
    # without it, it exits non-zero so that its supervisor can act.
    worker_redis_outage_seconds: float = Field(default=300.0, gt=0)
    # On SIGTERM a worker takes no new jobs and lets running ones finish for this long
    # before it cancels them (a job cancelled by shutdown runs again, not counted a try).
    worker_drain_seconds: int = Field(default=20, ge=0)
    # Jobs (syncs, sends) one worker process runs at once; each uses at most one of the
    # pool's connections at a time, and none while it waits on a mail server.
    worker_max_jobs: int = Field(default=10, ge=1, le=1000)
    # Where `mailsync api` listens (its --host/--port flags override these).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # /metrics answers only with this bearer token when set (else to anyone who reaches it).
    metrics_token: str | None = None
    # A worker serves its Prometheus metrics on this port (0: not served).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # The Sales Inbox web app at / (the API alone: false).
    web_app: bool = True
    # Origins (comma-separated, e.g. https://crm.example.com) whose pages may call the API
    # from a browser; none by default: the web app is served from the API's own origin.
    cors_origins: str = ""

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _message_fits_literal(self) -> Settings:
        if self.max_message_bytes > self.imap_max_literal_bytes:
            raise ValueError(
                "MAILSYNC_MAX_MESSAGE_BYTES must not exceed MAILSYNC_IMAP_MAX_LITERAL_BYTES"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            parse_keys(tuple(str(v) for v in value))  # raises ValueError with the reason
        return value

    @field_validator("mail_ports")
    @classmethod
    def _check_mail_ports(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "any":
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts or not all(p.isdigit() and 1 <= int(p) <= 65535 for p in parts):
                raise ValueError('must be "any" or comma-separated ports (1-65535)')
        return value

    @property
    def allowed_mail_ports(self) -> frozenset[int] | None:
        if self.mail_ports == "any":
            return None
        return frozenset(int(p) for p in self.mail_ports.split(",") if p.strip())

    @property
    def key_ring(self) -> KeyRing:
        return KeyRing.from_settings(self.secret_keys)


S = TypeVar("S", bound=BaseSettings)


def load_settings(kind: type[S], **overrides: Any) -> S:
    """Read the settings, turning a validation failure into one clear line."""
    try:
        return kind(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "MAILSYNC_" + str(error["loc"][0]).upper() if error["loc"] else "MAILSYNC_*"
        reason = "is not set" if error["type"] == "missing" else error["msg"]
        raise SettingsError(f"invalid configuration: {name} {reason}") from None
