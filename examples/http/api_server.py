"""A tiny orders API on 127.0.0.1 for the http example (standard library only, offline).

    python examples/http/api_server.py              # http://127.0.0.1:8765
    python examples/http/api_server.py --port 0     # any free port (printed)

Routes: GET /orders?status=&customer= (JSON list), GET /orders/ID (404 when unknown),
POST /orders (JSON body; 201; the same Idempotency-Key gives back the same order),
GET /inventory (503 with Retry-After: 1 on every other call), GET /v1/orders (redirects to
/orders, query kept), POST /feedback (a form; echoes its fields).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "customer": "ada", "status": "open", "total": 42.5},
    {"id": 2, "customer": "ada", "status": "shipped", "total": 10.0},
    {"id": 3, "customer": "bob", "status": "open", "total": 7.25},
]
BY_KEY: dict[str, dict[str, Any]] = {}
CALLS = {"inventory": 0}
LOCK = threading.Lock()


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, data: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        if data is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/orders":
            found = [
                o
                for o in ORDERS
                if all(str(o.get(k)) == v for k, v in query.items() if k in ("status", "customer"))
            ]
            self.reply(200, found)
        elif url.path.startswith("/orders/"):
            wanted = url.path.rsplit("/", 1)[1]
            order = next((o for o in ORDERS if str(o["id"]) == wanted), None)
            if order is None:
                self.reply(404, {"error": f"no order {wanted}"})
            else:
                self.reply(200, order)
        elif url.path == "/inventory":
            with LOCK:
                CALLS["inventory"] += 1
                busy = CALLS["inventory"] % 2 == 1
            if busy:
                self.reply(503, {"error": "busy, come back in a second"}, {"Retry-After": "1"})
            else:
                self.reply(200, {"widgets": 12, "gadgets": 0})
        elif url.path == "/v1/orders":
            location = "/orders" + (f"?{url.query}" if url.query else "")
            self.reply(301, None, {"Location": location})
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        url = urlsplit(self.path)
        if url.path == "/orders":
            key = self.headers.get("Idempotency-Key")
            with LOCK:
                if key and key in BY_KEY:
                    order = BY_KEY[key]  # a retried request: the order it made, not a new one
                else:
                    order = {
                        **json.loads(raw),
                        "id": len(ORDERS) + 1,
                        "status": "open",
                        "idempotency_key": key,
                    }
                    ORDERS.append(order)
                    if key:
                        BY_KEY[key] = order
            self.reply(201, order)
        elif url.path == "/feedback":
            self.reply(200, {k: v[0] for k, v in parse_qs(raw).items()})
        else:
            self.reply(404, {"error": "no such path"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Api)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
