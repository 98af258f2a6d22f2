"""Validation of what a user types when connecting an account (INVALID_INPUT on error)."""

from __future__ import annotations

from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from core.errors import ErrorCode, ServiceError
from core.mail.server import ServerLogin, SmtpRelay, SmtpServer
from core.models.enums import ConnectionSecurity

MAX_DISPLAY_NAME = 200
IMAP_PORTS = {
    ConnectionSecurity.SSL: 993,
    ConnectionSecurity.STARTTLS: 143,
    ConnectionSecurity.NONE: 143,
}
SMTP_PORTS = {
    ConnectionSecurity.SSL: 465,
    ConnectionSecurity.STARTTLS: 587,
    ConnectionSecurity.NONE: 587,
}


@dataclass(frozen=True)
class ServerFields:
    host: str
    password: str | None = field(repr=False)
    port: int | None = None
    security: ConnectionSecurity = ConnectionSecurity.SSL
    username: str | None = None


@dataclass(frozen=True)
class NewAccount:
    email_address: str
    imap: ServerFields
    display_name: str | None = None
    smtp: ServerFields | None = None


@dataclass(frozen=True)
class ValidAccount:
    email_address: str
    display_name: str | None
    imap: ServerLogin
    smtp: SmtpServer | None


def validate_address(address: str, field_name: str = "emailAddress") -> str:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ServiceError(ErrorCode.INVALID_INPUT, str(exc), field_name) from None


def validate_display_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise ServiceError(
            ErrorCode.INVALID_INPUT,
            f"The display name is longer than {MAX_DISPLAY_NAME} characters.",
            "displayName",
        )
    return name or None


def validate_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host or len(host) > 253 or any(c.isspace() or c in "/\\@" or c < " " for c in host):
        raise ServiceError(ErrorCode.INVALID_INPUT, "The host name is not valid.", "host")
    try:
        host.encode("idna")
    except UnicodeError:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The host name is not valid.", "host") from None
    return host


def _port(fields: ServerFields, default_ports: dict[ConnectionSecurity, int]) -> int:
    port = fields.port if fields.port is not None else default_ports[fields.security]
    if not 1 <= port <= 65535:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The port must be 1 to 65535.", "port")
    return port


def _login(fields: ServerFields, email_address: str, port: int) -> ServerLogin:
    if not fields.password:
        raise ServiceError(ErrorCode.INVALID_INPUT, "The password is empty.", "password")
    return ServerLogin(
        host=validate_host(fields.host),
        port=port,
        security=fields.security,
        username=(fields.username or "").strip() or email_address,
        password=fields.password,
    )


def validate_imap(fields: ServerFields, email_address: str) -> ServerLogin:
    return _login(fields, email_address, _port(fields, IMAP_PORTS))


def validate_smtp(fields: ServerFields, email_address: str) -> SmtpServer:
    """As for IMAP, except that no username and no password is a relay without a login."""
    port = _port(fields, SMTP_PORTS)
    if (fields.username or "").strip() or fields.password:
        return _login(fields, email_address, port)
    return SmtpRelay(validate_host(fields.host), port, fields.security)


def validate_new_account(data: NewAccount) -> ValidAccount:
    address = validate_address(data.email_address)
    try:
        imap = validate_imap(data.imap, address)
    except ServiceError as exc:
        raise exc.at("imap") from None
    smtp = None
    if data.smtp is not None:
        try:
            smtp = validate_smtp(data.smtp, address)
        except ServiceError as exc:
            raise exc.at("smtp") from None
    return ValidAccount(address, validate_display_name(data.display_name), imap, smtp)
