"""Resolve a user-supplied mail host and refuse internal addresses (SSRF guard)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from core.errors import ErrorCode, ServiceError


def is_internal_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        not ip.is_global  # also shared address space (100.64/10), e.g. cloud metadata
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def resolve_mail_host(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to; every address the name has must be public unless allowed.

    Callers connect to the returned address (keeping ``host`` for TLS) so that a second
    DNS answer cannot point the connection somewhere internal after this check.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE, f"The mail server {host} could not be found.", "host"
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ServiceError(
            ErrorCode.SERVER_UNREACHABLE, f"The mail server {host} could not be found.", "host"
        )
    if not allow_private and any(is_internal_address(a) for a in addresses):
        raise ServiceError(
            ErrorCode.HOST_NOT_ALLOWED,
            f"{host} resolves to a private or loopback address, which is not allowed.",
            "host",
        )
    return addresses[0]
