"""Resolve a user-supplied mail host and refuse internal addresses (SSRF guard)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from core.errors import ErrorCode, ServiceError

# IPv6 ranges that carry or reach IPv4 or private networks without looking private:
# 6to4 (2002::/16 embeds an IPv4 address such as 127.0.0.1 or 169.254.169.254), Teredo
# (2001::/32), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and the deprecated site-local fec0::/10.
_TUNNELS = tuple(
    ipaddress.ip_network(n)
    for n in ("2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48", "fec0::/10")
)


def is_internal_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in network for network in _TUNNELS):
            return True
    return (
        not ip.is_global  # also shared address space (100.64/10), e.g. cloud metadata
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def resolve_mail_host(
    host: str, port: int, *, allow_private: bool, ports: frozenset[int] | None = None
) -> str:
    """The address to connect to; every address the name has must be public unless allowed,
    and ``port`` one of ``ports`` (None: any).

    Callers connect to the returned address (keeping ``host`` for TLS) so that a second
    DNS answer cannot point the connection somewhere internal after this check. The port
    is checked before any lookup, so that the answers cannot map which ports are open.
    """
    if ports is not None and port not in ports:
        raise ServiceError(
            ErrorCode.HOST_NOT_ALLOWED,
            f"Port {port} is not a mail port this service connects to "
            f"({', '.join(str(p) for p in sorted(ports))}).",
            "port",
        )
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
