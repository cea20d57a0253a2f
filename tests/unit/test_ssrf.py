"""The SSRF guard's decisions (``flowforge.blocks.ssrf``): which addresses are refused, how IP
literals are read, and what ``allowed_networks`` allows."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from flowforge.blocks.policy import BlockPolicy
from flowforge.blocks.ssrf import AddressGuard, forbidden_reason, ip_literal, is_localhost_name
from flowforge.errors import ConfigurationError, NonRetryableError


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("0.0.0.0", "this network"),
        ("0.1.2.3", "this network"),
        ("10.1.2.3", "RFC 1918"),
        ("172.16.0.1", "RFC 1918"),
        ("172.31.255.255", "RFC 1918"),
        ("192.168.100.1", "RFC 1918"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("169.254.169.254", "metadata"),
        ("169.254.0.1", "link-local"),
        ("192.0.0.170", "IETF"),
        ("192.0.2.5", "documentation"),
        ("198.18.5.5", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("192.88.99.1", "6to4 relay"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, which is loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:0:127.0.0.1", "IPv4-translated"),
        ("64:ff9b::127.0.0.1", "NAT64 form of 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:7f00:1::1", "6to4 form of 127.0.0.1"),
        ("2002:c0a8:0101::1", "6to4 form of 192.168.1.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:db8::1", "documentation"),
        ("100::1", "discard"),
        ("fc00::1", "unique local"),
        ("fd00:ec2::254", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("ff05::1:3", "multicast"),
    ],
)
def test_special_addresses_are_refused_with_their_reason(address: str, why: str) -> None:
    reason = forbidden_reason(ipaddress.ip_address(address))
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above
        "172.15.255.255",
        "172.32.0.0",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82a::200e",
        "::ffff:8.8.8.8",  # mapped public: judged by its IPv4 address
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
    ],
)
def test_ip_literals_in_every_spelling_are_read(host: str, address: str) -> None:
    assert ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "deadbeef", "cafe.be", "localhost", "a.b.c.d"])
def test_host_names_are_not_ip_literals(host: str) -> None:
    assert ip_literal(host) is None


def test_localhost_names() -> None:
    assert is_localhost_name("localhost")
    assert is_localhost_name("LocalHost.")
    assert is_localhost_name("api.localhost")
    assert not is_localhost_name("localhost.example.com")
    assert not is_localhost_name("mylocalhost")


def server(*allowed: str) -> AddressGuard:
    return AddressGuard.from_policy(
        dataclasses.replace(BlockPolicy.for_server({}), allowed_networks=allowed)
    )


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_the_server_policy_refuses_and_the_local_policy_allows() -> None:
    local = AddressGuard.from_policy(BlockPolicy.local({}))
    local.check("localhost", [ip("127.0.0.1")])
    local.check_name("localhost")
    with pytest.raises(NonRetryableError) as refused:
        server().check("db.internal", [ip("8.8.8.8"), ip("10.0.0.5")])
    assert refused.value.error_type == "ForbiddenAddress"
    assert "host 'db.internal' at address 10.0.0.5: private (RFC 1918)" in str(refused.value)
    with pytest.raises(NonRetryableError, match="loopback host name"):
        server().check_name("LOCALHOST.")
    server().check("example.com", [ip("93.184.216.34")])


def test_allowed_networks_take_cidrs_addresses_names_and_suffixes() -> None:
    guard = server("10.1.2.0/24", "192.168.0.7", "fd00::/8", "Api.Internal", "*.corp.example")
    guard.check("x", [ip("10.1.2.200")])
    guard.check("x", [ip("::ffff:10.1.2.3")])  # the mapped form of an allowed address
    guard.check("x", [ip("192.168.0.7")])
    guard.check("x", [ip("fd12::1")])
    guard.check("api.internal.", [ip("127.0.0.1")])  # allowed by name: any address
    guard.check("db.corp.example", [ip("10.9.9.9")])
    guard.check_name("api.internal")
    for host, address in [
        ("x", "10.1.3.1"),
        ("x", "192.168.0.8"),
        ("corp.example", "10.9.9.9"),  # the suffix allows names under it only
        ("other.internal", "10.9.9.9"),
    ]:
        with pytest.raises(NonRetryableError):
            guard.check(host, [ip(address)])


def test_an_unusable_allowed_network_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"10\.0\.0\.0/33"):
        server("10.0.0.0/33")


def test_the_environment_configures_the_server_policy() -> None:
    policy = BlockPolicy.for_server(
        {"FLOWFORGE_ALLOWED_NETWORKS": "10.0.0.0/8, metadata.google.internal"}
    )
    guard = AddressGuard.from_policy(policy)
    guard.check("x", [ip("10.2.3.4")])
    guard.check("metadata.google.internal", [ip("169.254.169.254")])
    with pytest.raises(NonRetryableError):
        guard.check("x", [ip("169.254.169.254")])
    everything = AddressGuard.from_policy(
        BlockPolicy.for_server({"FLOWFORGE_ALLOW_PRIVATE_NETWORKS": "1"})
    )
    everything.check("x", [ip("169.254.169.254")])
