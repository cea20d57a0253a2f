"""The SSRF corpus (issue 4): URLs aimed at this machine, private networks, metadata services
and special ranges, in every spelling — all refused by a worker (``BlockPolicy.for_server``)
with error type ``ForbiddenAddress``, and none reaches its target: a canary server on
127.0.0.1 (and ::1 when the machine has IPv6) counts the requests it gets, and gets none.

Redirects: a redirector on 127.0.0.1, reached by the name ``localhost`` that the worker's
configuration allows (``FLOWFORGE_ALLOWED_NETWORKS=localhost``), redirects to addresses that
are not allowed; every hop is checked, so the second hop is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from http_kit import TestServer, ipv6_loopback_works, run_on_server, serving

import flowforge
from flowforge.blocks.http_client import Outgoing, fetch
from flowforge.blocks.policy import BlockPolicy
from flowforge.blocks.ssrf import IPAddress
from flowforge.errors import BlockError


@pytest.fixture
def canary() -> Iterator[TestServer]:
    with serving("127.0.0.1") as server:
        yield server


@pytest.fixture
def canary6() -> Iterator[TestServer | None]:
    if not ipv6_loopback_works():
        yield None
        return
    with serving("::1") as server:
        yield server


@pytest.fixture(autouse=True)
def _server_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWFORGE_ALLOW_PRIVATE_NETWORKS", "FLOWFORGE_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)


def own_host_name() -> list[str]:
    """This machine's name when it resolves to loopback or private addresses only (it
    usually does: 127.0.1.1 on Debian, 127.0.0.1 in containers)."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError:
        return []
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return [name] if addresses and not any(a.is_global for a in addresses) else []


def direct_corpus(port: int, port6: int | None) -> list[str]:
    """URLs aimed at the canary (``port``) or at private and special ranges."""
    p = port
    v6 = port6 if port6 is not None else port
    return [
        # loopback, spelled every way
        f"http://127.0.0.1:{p}/",
        f"https://127.0.0.1:{p}/",
        f"http://127.0.0.1:{p}/admin?x=1#frag",
        f"http://127.0.0.2:{p}/",
        f"http://127.255.255.254:{p}/",
        f"http://localhost:{p}/",
        f"http://LOCALHOST:{p}/",
        f"http://localhost.:{p}/",
        f"http://api.localhost:{p}/",
        f"http://127.0.0.1.:{p}/",
        f"http://2130706433:{p}/",  # decimal
        f"http://0x7f000001:{p}/",  # hex
        f"http://017700000001:{p}/",  # octal
        f"http://0177.0.0.1:{p}/",  # octal dotted
        f"http://0x7f.0x0.0x0.0x1:{p}/",  # hex dotted
        f"http://0x7f.1:{p}/",  # short hex
        f"http://127.1:{p}/",  # short
        f"http://127.0.1:{p}/",
        f"http://127。0。0。1:{p}/",  # ideographic full stops
        f"http://example.com@127.0.0.1:{p}/",  # user info
        f"http://user:pass@127.0.0.1:{p}/",
        f"http://example.com:80@127.0.0.1:{p}/",
        *(f"http://{name}:{p}/" for name in own_host_name()),
        # unspecified: reaches this machine on Linux
        f"http://0.0.0.0:{p}/",
        f"http://0:{p}/",
        f"http://[::]:{v6}/",
        # IPv6 loopback and IPv4 embedded in IPv6
        f"http://[::1]:{v6}/",
        f"http://[0:0:0:0:0:0:0:1]:{v6}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://[::ffff:7f00:1]:{p}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
        f"http://[64:ff9b::127.0.0.1]:{p}/",  # NAT64
        f"http://[2002:7f00:1::1]:{p}/",  # 6to4
        f"http://[::127.0.0.1]:{p}/",  # IPv4-compatible
        # private (RFC 1918), CGNAT, link-local and metadata
        "http://10.0.0.1/",
        "http://10.255.255.254:8080/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.0.1/",
        "http://192.168.1.1:8443/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IMDS over IPv6
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
        # special IPv4 ranges
        "http://224.0.0.1/",
        "http://239.255.255.250:1900/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://192.0.0.8/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://198.51.100.1/",
        "http://203.0.113.1/",
        # special IPv6 ranges
        "http://[fc00::1]/",
        "http://[fdff:ffff::1]/",
        "http://[fe80::1]/",
        "http://[fe80::1%25lo]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        "http://[100::1]/",
        "http://[2001:db8::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://[64:ff9b:1::1]/",  # local-use NAT64
    ]


def corpus_workflow(urls: list[str], methods: tuple[str, ...] = ("GET",)) -> flowforge.Workflow:
    wf = flowforge.Workflow(f"ssrf-{uuid.uuid4().hex[:8]}")
    for index, url in enumerate(urls):
        method = methods[index % len(methods)]
        block: dict[str, Any] = {"id": f"u{index}", "type": "http", "method": method, "url": url}
        if method in ("POST", "PUT"):
            block["json"] = {"probe": index}
        # a broken guard would hang on unroutable addresses: bound it, and allow a retry so
        # that "never retried" is checked too
        block["timeout"] = "3s"
        block["retry"] = {"max_attempts": 2, "initial_interval": "10ms"}
        wf.add(block)
    return wf


def assert_all_refused(
    result: flowforge.RunResult, urls: list[str], error_type: str = "ForbiddenAddress"
) -> None:
    wrong = []
    for index, url in enumerate(urls):
        block = result.block(f"u{index}")
        error = block.error or {}
        if error.get("type") != error_type or block.attempts != 1:
            wrong.append(f"{url}: {block.status}, attempts {block.attempts}, {error}")
    assert not wrong, "not refused as expected:\n" + "\n".join(wrong)


def test_the_direct_corpus_is_refused_and_never_reaches_the_canary(
    engine: flowforge.Engine, canary: TestServer, canary6: TestServer | None
) -> None:
    urls = direct_corpus(canary.port, canary6.port if canary6 else None)
    assert len(set(urls)) >= 60

    result = run_on_server(engine, corpus_workflow(urls, ("GET", "POST", "PUT", "DELETE")))

    assert result.status == "failed"
    assert_all_refused(result, urls)
    assert canary.seen == []
    assert canary6 is None or canary6.seen == []
    messages = {url: result.block(f"u{i}").error["message"] for i, url in enumerate(urls)}  # type: ignore[index]
    assert (
        "host '169.254.169.254' at address 169.254.169.254: link-local"
        in messages["http://169.254.169.254/latest/meta-data/"]
    )
    assert "FLOWFORGE_ALLOWED_NETWORKS" in messages["http://10.0.0.1/"]


def test_the_canary_does_count_what_reaches_it(
    engine: flowforge.Engine, canary: TestServer
) -> None:
    """Control: the same URLs from ``flowforge run`` (private networks allowed) reach it."""
    urls = [f"http://127.0.0.1:{canary.port}/echo", f"http://2130706433:{canary.port}/echo"]
    result = engine.run(corpus_workflow(urls))

    assert result.status == "completed", result.failure_reason
    assert len(canary.seen) == 2


def redirect_targets(port: int) -> list[str]:
    p = port
    return [
        f"http://127.0.0.1:{p}/",
        f"http://127.1:{p}/",
        f"http://2130706433:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://[::1]:{p}/",
        f"https://127.0.0.1:{p}/",
        f"//127.0.0.1:{p}/",  # scheme-relative
        f"http://example.com@127.0.0.1:{p}/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
    ]


def test_redirects_from_an_allowed_host_to_private_addresses_are_refused(
    engine: flowforge.Engine, canary: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_ALLOWED_NETWORKS", "localhost")
    with serving("127.0.0.1") as redirector:
        front = f"http://localhost:{redirector.port}"
        urls: list[str] = []
        for code in (301, 302, 303, 307, 308):
            for target in redirect_targets(canary.port):
                urls.append(f"{front}/redirect?code={code}&to={quote(target, safe='')}")
        # two hops: allowed, allowed again, then the canary
        inner = f"{front}/redirect?to={quote(f'http://127.0.0.1:{canary.port}/', safe='')}"
        urls.append(f"{front}/redirect?to={quote(inner, safe='')}")
        control = f"{front}/chain?n=2"
        wf = corpus_workflow(urls, ("GET", "POST"))
        wf.add({"id": "control", "type": "http", "url": control})

        result = run_on_server(engine, wf)

        assert_all_refused(result, urls)
        assert canary.seen == []
        assert result.block("control").output["status_code"] == 200, "the allowed host works"
        # the first hop was allowed (the redirector saw it), the next one refused
        assert len(redirector.paths("/redirect")) == len(urls) + 1
        message = result.block("u0").error["message"]  # type: ignore[index]
        assert "host '127.0.0.1' at address 127.0.0.1: loopback" in message


def test_redirects_to_other_schemes_are_refused(
    engine: flowforge.Engine, canary: TestServer
) -> None:
    with serving("127.0.0.1") as redirector:
        targets = [
            "file:///etc/passwd",
            f"gopher://127.0.0.1:{canary.port}/_GET%20/",
            f"ftp://127.0.0.1:{canary.port}/",
            f"dict://127.0.0.1:{canary.port}/info",
        ]
        urls = [redirector.url(f"/redirect?to={quote(t, safe='')}") for t in targets]

        result = engine.run(corpus_workflow(urls))  # even on the user's own machine

        assert_all_refused(result, urls, error_type="InvalidUrl")
        assert canary.seen == []


# -- at the connection: one resolution, and the checked address is the one connected to -----------


def _outgoing(url: str) -> Outgoing:
    return Outgoing(method="GET", url=url, headers=[], params=[], timeout=3.0)


def test_the_address_checked_is_the_address_connected_to_dns_rebinding() -> None:
    """A resolver that answers an allowed address first and the canary's next (a rebinding
    DNS server). The canary listens where the system resolver puts this machine's name, so
    connecting by name, or resolving twice, would reach it. The host is resolved once, and the
    connection goes to the checked address (where nothing listens)."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    target = str(infos[0][4][0])
    decoy = "127.0.0.2" if target != "127.0.0.2" else "127.0.0.3"
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(decoy if len(asked) == 1 else target)]

    policy = dataclasses.replace(BlockPolicy.for_server({}), allowed_networks=(f"{decoy}/32",))
    with serving(target) as canary:
        url = f"http://{name}:{canary.port}/"
        with pytest.raises(BlockError) as refused:
            asyncio.run(fetch(_outgoing(url), policy, logging.getLogger("test"), rebinding))

        assert refused.value.error_type == "ConnectionError", refused.value  # nothing at decoy
        assert asked == [name]
        assert canary.seen == []


def test_a_host_with_one_private_address_among_public_ones_is_refused(
    canary: TestServer,
) -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")]

    url = f"http://mixed.example:{canary.port}/"
    with pytest.raises(BlockError) as refused:
        asyncio.run(
            fetch(_outgoing(url), BlockPolicy.for_server({}), logging.getLogger("test"), mixed)
        )

    assert refused.value.error_type == "ForbiddenAddress"
    assert "host 'mixed.example' at address 127.0.0.1" in str(refused.value)
    assert canary.seen == []


def test_a_block_run_with_a_server_context_is_refused(canary: TestServer) -> None:
    """The block on its own, given the context a worker gives it (``BlockContext`` is data)."""
    from flowforge.blocks.context import BlockContext
    from flowforge.blocks.http import HttpBlock

    block = HttpBlock.model_validate({"id": "probe", "url": f"http://0x7f.1:{canary.port}/"})
    ctx = BlockContext(
        run_id="run_x",
        workflow_id="w",
        block_id="probe",
        attempt=1,
        idempotency_key="run_x:probe",
        params={},
        logger=logging.getLogger("test"),
        resolve_function=lambda name: print,
        policy=BlockPolicy.for_server({}),
    )

    with pytest.raises(BlockError) as refused:
        asyncio.run(block.run(ctx))

    assert refused.value.error_type == "ForbiddenAddress"
    assert not refused.value.retryable
    assert canary.seen == []
