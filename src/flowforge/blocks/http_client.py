"""The ``http`` block's HTTP client: httpx over connections the SSRF guard checked.

httpx sends requests through httpcore, and httpcore asks a *network backend* for each new TCP
connection, passing the URL's host name. ``GuardedBackend`` resolves that name itself, asks the
guard (``flowforge.blocks.ssrf``) about every address, and opens the socket to one of the
addresses it checked — never to the name — so a DNS answer that changes between the check and
the connection (DNS rebinding) cannot slip through. TLS still verifies the certificate against
the host name: httpcore passes it to ``start_tls`` as ``server_hostname``.

``GuardedTransport`` is the only transport of the client (no proxies, no environment
settings): there is no other way out. Redirects are not followed by httpx: ``fetch`` follows
them one hop at a time, and every hop to a new origin opens a new connection, checked again.

This module imports httpx: the ``http`` block imports it when it runs, not when a definition is
validated.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from flowforge.blocks.policy import BlockPolicy
from flowforge.blocks.ssrf import AddressGuard, IPAddress, ip_literal
from flowforge.errors import BlockError, NonRetryableError

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""Resolves a host name to its addresses (``system_resolve``; tests may pass their own)."""

USER_AGENT = "flowforge-http/0.1"


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the system resolver, in its order, without duplicates."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise BlockError(
            f"could not resolve host '{host}': {reason}", error_type="ConnectionError"
        ) from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ip_literal(str(sockaddr[0]))
        if address is not None and address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the guard allowed (see the module docstring)."""

    def __init__(self, guard: AddressGuard, resolve: Resolver = system_resolve) -> None:
        self.guard = guard
        self.resolve = resolve
        self.inner = httpcore.AnyIOBackend()
        self.connected: list[tuple[str, str, int]] = []
        """(host, address, port) of every connection opened, for the block's log and tests."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port, timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.connected.append((host, str(address), port))
            return stream
        if error is None:
            raise httpcore.ConnectError(f"host '{host}' has no address")
        raise error

    async def checked_addresses(
        self, host: str, port: int, timeout: float | None
    ) -> list[IPAddress]:
        """Resolve ``host`` once and check every address; raises ``ForbiddenAddress``."""
        literal = ip_literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            self.guard.check_name(host)
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self.resolve(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving '{host}' took over {timeout}s") from None
        self.guard.check(host, addresses)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NonRetryableError("http blocks do not use Unix sockets", error_type="InvalidUrl")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx exceptions of the same name (as httpx does)."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.split(".")[0] == "httpcore":
            for cls in type(exc).__mro__:
                mapped = getattr(httpx, cls.__name__, None)
                if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                    raise mapped(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self.stream:
                yield chunk

    async def aclose(self) -> None:
        if hasattr(self.stream, "aclose"):
            with _as_httpx_errors():
                await self.stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport over an httpcore pool whose every connection is ``GuardedBackend``'s."""

    def __init__(self, backend: GuardedBackend) -> None:
        self.backend = backend
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            network_backend=backend,
            max_connections=10,
            keepalive_expiry=5.0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self.pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CAs, ``SSL_CERT_FILE``), built once per process."""
    return httpx.create_ssl_context()


def guarded_client(
    policy: BlockPolicy, timeout: float, resolve: Resolver = system_resolve
) -> httpx.AsyncClient:
    """An httpx client whose only way out is the guarded transport; redirects not followed."""
    transport = GuardedTransport(GuardedBackend(AddressGuard.from_policy(policy), resolve))
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


# -- one request, its redirects and its response ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the block sends (already rendered and validated)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    params: list[tuple[str, str]]
    content: bytes | None = None
    json: Any = None
    has_json: bool = False
    form: list[tuple[str, str]] | None = None
    timeout: float = 30.0
    follow_redirects: bool = True
    max_redirects: int = 10
    max_response_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """The final response, its body read (at most ``max_response_bytes``)."""

    status_code: int
    reason: str
    headers: list[tuple[str, str]]
    content: bytes
    url: str
    redirects: int


def describe_url(url: httpx.URL | str) -> str:
    """The URL without user info, query or fragment: safe to log and to put in messages."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


async def fetch(
    outgoing: Outgoing,
    policy: BlockPolicy,
    logger: logging.Logger,
    resolve: Resolver = system_resolve,
) -> Reply:
    """Send ``outgoing`` (following redirects hop by hop) and read the final response.

    Errors are ``BlockError``s with the block's error types: ``Timeout`` and
    ``ConnectionError`` (retryable), ``ForbiddenAddress``, ``InvalidUrl``,
    ``TooManyRedirects``, ``ResponseTooLarge`` (not retryable)."""
    first = _url(outgoing.url, policy)
    where = f"{outgoing.method} {describe_url(first)}"
    try:
        async with asyncio.timeout(outgoing.timeout):
            async with guarded_client(policy, outgoing.timeout, resolve) as client:
                if outgoing.params:  # added to the URL's own query, which stays
                    first = first.copy_with(params=[*first.params.multi_items(), *outgoing.params])
                request = _build(client, first, outgoing)
                return await _follow(client, request, outgoing, logger)
    except TimeoutError:
        raise BlockError(
            f"{where}: no complete response within {outgoing.timeout:g}s", error_type="Timeout"
        ) from None
    except httpx.TimeoutException as exc:
        raise BlockError(
            f"{where}: {_timeout_kind(exc)} timed out after {outgoing.timeout:g}s",
            error_type="Timeout",
        ) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise NonRetryableError(f"{where}: invalid URL: {exc}", error_type="InvalidUrl") from None
    except httpx.LocalProtocolError as exc:
        raise NonRetryableError(
            f"{where}: the request is invalid: {exc}", error_type="InvalidInput"
        ) from None
    except httpx.DecodingError as exc:
        raise BlockError(
            f"{where}: the response body could not be decoded: {exc}",
            error_type="InvalidResponse",
        ) from None
    except httpx.TransportError as exc:
        raise BlockError(
            f"{where}: {type(exc).__name__}: {exc or 'connection failed'}",
            error_type="ConnectionError",
        ) from None


def _build(client: httpx.AsyncClient, url: httpx.URL, outgoing: Outgoing) -> httpx.Request:
    # header values as UTF-8 bytes: httpx would refuse text that is not ASCII
    headers = [(name.encode("ascii"), value.encode("utf-8")) for name, value in outgoing.headers]
    try:
        return client.build_request(
            outgoing.method,
            url,
            headers=headers,
            content=outgoing.content,
            json=outgoing.json if outgoing.has_json else None,
            data=_grouped(outgoing.form) if outgoing.form is not None else None,
        )
    except (TypeError, ValueError) as exc:  # a json body with NaN, say
        raise NonRetryableError(
            f"{outgoing.method} {describe_url(url)}: the request cannot be built: {exc}",
            error_type="InvalidInput",
        ) from None


async def _follow(
    client: httpx.AsyncClient, request: httpx.Request, outgoing: Outgoing, logger: logging.Logger
) -> Reply:
    redirects = 0
    while True:
        response = await client.send(request, stream=True)
        try:
            logger.info(
                "%s %s -> %d %s",
                request.method,
                describe_url(request.url),
                response.status_code,
                response.reason_phrase,
            )
            following = response.next_request if outgoing.follow_redirects else None
            if following is None:
                content = await _read(response, outgoing.max_response_bytes)
                return Reply(
                    status_code=response.status_code,
                    reason=response.reason_phrase,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw
                    ],
                    content=content,
                    url=describe_url(request.url),
                    redirects=redirects,
                )
        finally:
            await response.aclose()
        if redirects >= outgoing.max_redirects:
            raise NonRetryableError(
                f"{outgoing.method} {describe_url(outgoing.url)}: more than "
                f"{outgoing.max_redirects} redirect(s) (last to {describe_url(following.url)})",
                error_type="TooManyRedirects",
            )
        if following.url.scheme not in ("http", "https"):
            raise NonRetryableError(
                f"{request.method} {describe_url(request.url)} redirected to a "
                f"'{following.url.scheme}:' URL; only http and https are followed",
                error_type="InvalidUrl",
            )
        redirects += 1
        request = following


async def _read(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(response: httpx.Response, limit: int) -> NonRetryableError:
    return NonRetryableError(
        f"{response.request.method} {describe_url(response.request.url)}: the response body "
        f"is larger than max_response_bytes ({limit} bytes)",
        error_type="ResponseTooLarge",
    )


def _url(text: str, policy: BlockPolicy) -> httpx.URL:
    """Parse the URL; only http and https. An IPv4 form httpx refuses but the C library reads
    (``0177.0.0.1``) is judged by the guard first: a refused address is named as such."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        host = _raw_host(text)
        literal = ip_literal(host) if host else None
        if literal is not None:
            AddressGuard.from_policy(policy).check(host, [literal])
        raise NonRetryableError(f"invalid URL {text!r}: {exc}", error_type="InvalidUrl") from None
    if url.scheme not in ("http", "https"):
        raise NonRetryableError(
            f"invalid URL {describe_url(url) if url.host else text!r}: only http:// and "
            "https:// URLs are allowed",
            error_type="InvalidUrl",
        )
    if not url.host:
        raise NonRetryableError(f"invalid URL {text!r}: it has no host", error_type="InvalidUrl")
    return url


def _raw_host(text: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(text).hostname or ""
    except ValueError:
        return ""


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for the response",
        httpx.WriteTimeout: "sending the request",
        httpx.PoolTimeout: "waiting for a connection",
    }.get(type(exc), "the request")
