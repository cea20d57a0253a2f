"""Helpers of the ``http`` block tests: a real HTTP server on 127.0.0.1 in a thread, and a
way to run a workflow the way a ``flowforge worker`` (a server) runs it.

The server answers every method on these paths and records every request it gets:

- ``/echo``: 200 (or ``?status=``) with JSON ``{method, path, query, headers, body}``;
- ``/text``: ``text/plain`` "hello, world"; ``/latin1``: a ``text/plain; charset=latin-1`` body;
- ``/slow?seconds=S``: answers after S seconds;
- ``/status?code=C[&retry_after=R]``: answers C, with ``Retry-After: R`` when given;
- ``/flaky?key=K&fail=N&code=C[&retry_after=R]``: C for the first N requests of key K, then
  like ``/echo``;
- ``/redirect?to=URL[&code=302]``: a redirect to URL; ``/chain?n=N``: N redirects, then echo;
- ``/big?bytes=N``: N bytes of text; ``/badjson``: says JSON, is not; ``/nojson``: empty JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import flowforge

TERMINAL = {"completed", "failed", "canceled", "terminated", "timed_out"}


@dataclass
class Seen:
    """One request the server got."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: str
    at: float = field(default_factory=time.monotonic)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many blocks connect at once

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self.seen: list[Seen] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._any
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        seen = Seen(
            method=self.command,
            path=parts.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with self.server.lock:
            self.server.seen.append(seen)
        args = dict(query)
        route = getattr(self, "_route_" + parts.path.strip("/").replace("-", "_"), None)
        if route is None:
            self._send(404, b"no such path", "text/plain")
        else:
            route(seen, args)

    def _send(
        self,
        status: int,
        content: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def _echo(self, seen: Seen, status: int = 200) -> None:
        data = {
            "method": seen.method,
            "path": seen.path,
            "query": seen.query,
            "headers": seen.headers,
            "body": seen.body,
        }
        self._send(
            status, json.dumps(data).encode(), "application/json", {"X-Echo": "a", "x-echo": "b"}
        )

    def _route_echo(self, seen: Seen, args: dict[str, str]) -> None:
        self._echo(seen, int(args.get("status", 200)))

    def _route_text(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(200, b"hello, world", "text/plain; charset=utf-8")

    def _route_latin1(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(200, "café".encode("latin-1"), "text/plain; charset=latin-1")

    def _route_slow(self, seen: Seen, args: dict[str, str]) -> None:
        time.sleep(float(args.get("seconds", 1)))
        self._send(200, b"slow", "text/plain")

    def _route_status(self, seen: Seen, args: dict[str, str]) -> None:
        code = int(args["code"])
        extra = {"Retry-After": args["retry_after"]} if "retry_after" in args else {}
        self._send(code, f"status {code}".encode(), "text/plain", extra)

    def _route_flaky(self, seen: Seen, args: dict[str, str]) -> None:
        with self.server.lock:
            count = self.server.counts.get(args["key"], 0) + 1
            self.server.counts[args["key"]] = count
        if count <= int(args.get("fail", 1)):
            code = int(args.get("code", 500))
            extra = {"Retry-After": args["retry_after"]} if "retry_after" in args else {}
            self._send(code, f"failure {count}".encode(), "text/plain", extra)
        else:
            self._echo(seen)

    def _route_redirect(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(int(args.get("code", 302)), b"", None, {"Location": args["to"]})

    def _route_chain(self, seen: Seen, args: dict[str, str]) -> None:
        left = int(args.get("n", 0))
        if left <= 0:
            self._echo(seen)
        else:
            self._send(302, b"", None, {"Location": f"/chain?n={left - 1}"})

    def _route_big(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(200, b"x" * int(args["bytes"]), "text/plain")

    def _route_badjson(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(200, b"{not json", "application/json")

    def _route_nojson(self, seen: Seen, args: dict[str, str]) -> None:
        self._send(200, b"", "application/problem+json")


class TestServer:
    """A threaded HTTP server on ``host`` (port chosen by the OS)."""

    __test__ = False

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.httpd = _Server((host, 0), family)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/echo") -> str:
        return f"http://{self.netloc}{path}"

    @property
    def seen(self) -> list[Seen]:
        with self.httpd.lock:
            return list(self.httpd.seen)

    def paths(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[TestServer]:
    server = TestServer(host)
    try:
        yield server
    finally:
        server.close()


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def run_on_server(
    engine: flowforge.Engine, workflow: flowforge.Workflow, timeout: float = 60.0
) -> flowforge.RunResult:
    """Queue a run and let ``Engine.work`` — a shared worker, as ``flowforge worker`` runs
    (``BlockPolicy.for_server``) — run it to its end."""
    run = engine.start(workflow)

    async def work() -> None:
        stop = asyncio.Event()
        worker = asyncio.create_task(engine.work(stop, drain_timeout=5))
        deadline = time.monotonic() + timeout
        try:
            while engine.get(run.run_id).status not in TERMINAL:
                if time.monotonic() > deadline or worker.done():
                    raise AssertionError(f"run {run.run_id} did not end in {timeout}s")
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker

    asyncio.run(work())
    return engine.get(run.run_id)
