"""The SSRF guard of the ``http`` block: which addresses a request may connect to.

A workflow author chooses the URLs of ``http`` blocks, often from run parameters. On a server,
a URL such as ``http://169.254.169.254/latest/meta-data/`` or ``http://10.0.0.5:5432/`` would
reach the server's own network (server-side request forgery). So, unless the policy allows
private networks, a connection is refused when any address its host resolves to is:

- loopback (``127.0.0.0/8``, ``::1``), unspecified (``0.0.0.0/8``, ``::``);
- private (RFC 1918 ``10/8``, ``172.16/12``, ``192.168/16``; unique local ``fc00::/7``);
- link-local (``169.254/16`` — cloud metadata services — and ``fe80::/10``);
- shared address space (CGNAT ``100.64/10``), multicast, broadcast, reserved, documentation,
  benchmarking and IETF-assignment ranges, and any other address Python does not call global;
- an IPv6 form of one of those: IPv4-mapped (``::ffff:127.0.0.1``), NAT64 (``64:ff9b::/96``)
  and 6to4 (``2002::/16``) addresses are judged by the IPv4 address they embed;
  IPv4-compatible (``::/96``), IPv4-translated, local-use NAT64 and Teredo addresses are refused.

Host names under ``localhost`` are refused by name, whatever the resolver says (RFC 6761).
``policy.allowed_networks`` lists exceptions: CIDRs (``10.1.2.0/24``, ``fd00::/8``), single
addresses, host names (``api.internal``) or name suffixes (``*.internal``). A host allowed by
name may resolve to any address.

This module decides; ``flowforge.blocks.http_client`` resolves the host once, asks
``AddressGuard.check`` about every address, and connects only to an address it checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from flowforge.blocks.policy import BlockPolicy
from flowforge.errors import ConfigurationError, NonRetryableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORBIDDEN_ADDRESS = "ForbiddenAddress"

_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (0.0.0.0/8: reaches the local host)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata services such as 169.254.169.254)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified (reaches the local host)"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo tunnel"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6)"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
_V4_NETWORKS = tuple((ipaddress.IPv4Network(cidr), why) for cidr, why in _V4_RANGES)
_V6_NETWORKS = tuple((ipaddress.IPv6Network(cidr), why) for cidr, why in _V6_RANGES)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), with the form's name."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address, or None when it is one."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        inner, form = embedded
        why = forbidden_reason(inner)
        return None if why is None else f"{form} form of {inner}, which is {why}"
    networks = _V4_NETWORKS if isinstance(address, ipaddress.IPv4Address) else _V6_NETWORKS
    for network, why in networks:
        if address in network:
            return why
    if address.is_multicast:
        return "multicast"
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        return "loopback, link-local or unspecified"
    if address.is_private or address.is_reserved or not address.is_global:
        return "not a public (globally routable) address"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal: dotted IPv4, IPv6 (brackets, a zone id,
    percent-encoded or not), or an IPv4 form the C library also accepts (``2130706433``,
    ``0177.0.0.1``, ``0x7f.1``, ``127.1``); None for a host name."""
    text = unquote(host.strip()).strip("[]")
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefABCDEFxX." for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def is_localhost_name(host: str) -> bool:
    """``localhost`` and names under it always mean this machine (RFC 6761)."""
    name = normalise_host(host)
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """Decides whether a host's addresses may be connected to, from a ``BlockPolicy``."""

    allow_private_network: bool
    networks: tuple[IPNetwork, ...] = ()
    host_names: frozenset[str] = frozenset()
    host_suffixes: tuple[str, ...] = ()
    server: bool = False

    @classmethod
    def from_policy(cls, policy: BlockPolicy) -> AddressGuard:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in policy.allowed_networks:
            item = entry.strip()
            if not item:
                continue
            literal = ip_literal(item.split("/", 1)[0]) if "/" in item else ip_literal(item)
            if literal is not None or "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                except ValueError:
                    raise ConfigurationError(
                        f"allowed network {entry!r} is neither a CIDR (10.1.2.0/24), an "
                        "address nor a host name"
                    ) from None
            elif item.startswith("*."):
                suffixes.append("." + normalise_host(item[2:]))
            else:
                names.add(normalise_host(item))
        return cls(
            allow_private_network=policy.allow_private_network,
            networks=tuple(networks),
            host_names=frozenset(names),
            host_suffixes=tuple(suffixes),
            server=policy.server,
        )

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` is allowed by name (then any address it resolves to is)."""
        if self.allow_private_network:
            return True
        name = normalise_host(host)
        return name in self.host_names or any(name.endswith(s) for s in self.host_suffixes)

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused, or None when it is allowed."""
        if self.allow_private_network:
            return None
        why = forbidden_reason(address)
        if why is None:
            return None
        embedded = embedded_ipv4(address)
        candidates = [address] if embedded is None else [address, embedded[0]]
        for candidate in candidates:
            if any(candidate.version == n.version and candidate in n for n in self.networks):
                return None
        return why

    def check_name(self, host: str) -> None:
        """Refuse ``localhost`` names before resolving them (unless allowed)."""
        if is_localhost_name(host) and not self.host_allowed(host):
            raise self._forbidden(host, None, "a loopback host name (RFC 6761)")

    def check(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise ``NonRetryableError`` (``ForbiddenAddress``) when any address is refused."""
        if self.host_allowed(host):
            return
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                raise self._forbidden(host, address, why)

    def _forbidden(self, host: str, address: IPAddress | None, why: str) -> NonRetryableError:
        where = f"host '{host}'" if address is None else f"host '{host}' at address {address}"
        whose = "on this worker (a server)" if self.server else "by this process's policy"
        allow = (
            f"add {address if address is not None else normalise_host(host)} to "
            "FLOWFORGE_ALLOWED_NETWORKS (a CIDR or host name), or set "
            "FLOWFORGE_ALLOW_PRIVATE_NETWORKS=1, where the worker runs"
        )
        return NonRetryableError(
            f"refused to connect to {where}: {why}; such addresses are refused {whose} to "
            f"prevent server-side request forgery. To allow it, {allow}",
            error_type=FORBIDDEN_ADDRESS,
        )
