"""The SSRF guard: which addresses count as internal (pure functions, no network)."""

from __future__ import annotations

import pytest

from core.errors import ErrorCode, ServiceError
from core.mail.hosts import is_internal_address, resolve_mail_host


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "127.8.9.10",
        "169.254.1.1",  # link-local (cloud metadata lives at 169.254.169.254)
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 (an address to classify, not to bind)
        "224.0.0.1",  # multicast
        "::1",
        "::",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.1.2.3",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",  # unique local
        "fd12:3456:789a::1",
    ],
)
def test_internal_addresses_are_internal(address: str) -> None:
    assert is_internal_address(address) is True


@pytest.mark.parametrize("address", ["100.64.0.1", "100.100.100.200"])
def test_shared_address_space_is_internal(address: str) -> None:
    """RFC 6598 (100.64.0.0/10) is not globally routable; Alibaba Cloud's instance metadata
    service answers at 100.100.100.200, a classic SSRF target."""
    assert is_internal_address(address) is True


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "::ffff:93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
        "2001:4860:4860::8888",
    ],
)
def test_public_addresses_are_not_internal(address: str) -> None:
    assert is_internal_address(address) is False


@pytest.mark.parametrize("literal", ["127.0.0.1", "10.0.0.1", "::1", "169.254.169.254"])
async def test_resolving_an_internal_literal_is_host_not_allowed(literal: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await resolve_mail_host(literal, 993, allow_private=False)
    assert caught.value.code is ErrorCode.HOST_NOT_ALLOWED
    assert caught.value.field == "host"


async def test_internal_literal_is_returned_when_private_hosts_are_allowed() -> None:
    assert await resolve_mail_host("127.0.0.1", 993, allow_private=True) == "127.0.0.1"


async def test_public_literal_is_returned_as_is() -> None:
    assert await resolve_mail_host("93.184.216.34", 993, allow_private=False) == "93.184.216.34"


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:5db8:d822::1",  # 6to4 of a public address: still a tunnel we will not follow
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "fec0::1",  # site-local (deprecated, still routed inside some networks)
    ],
)
def test_ipv6_tunnels_and_site_local_are_internal(address: str) -> None:
    assert is_internal_address(address) is True


@pytest.mark.parametrize("port", [22, 80, 6379, 5432, 8080])
async def test_a_port_outside_the_mail_ports_is_refused_before_any_lookup(port: int) -> None:
    """Error texts about closed or open ports would map a network: no connection, no DNS."""
    with pytest.raises(ServiceError) as caught:
        await resolve_mail_host(
            "host.that.does.not.resolve.invalid",
            port,
            allow_private=False,
            ports=frozenset({25, 465, 587, 143, 993, 2525}),
        )
    assert (caught.value.code, caught.value.field) == (ErrorCode.HOST_NOT_ALLOWED, "port")


async def test_a_mail_port_passes_the_port_check() -> None:
    assert (
        await resolve_mail_host("93.184.216.34", 993, allow_private=False, ports=frozenset({993}))
        == "93.184.216.34"
    )
