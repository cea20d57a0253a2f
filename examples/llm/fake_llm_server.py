"""A tiny OpenAI-compatible chat-completions server, so that examples/llm runs offline.

    python examples/llm/fake_llm_server.py --port 8765

Its "model" triages support tickets by keywords: asked for JSON (``response_format``), it
answers ``{"category": …, "urgency": …}``; otherwise it writes a short reply. Like real models
it makes mistakes: on a ticket with an exclamation mark its first JSON answer gives the urgency
as a word, and the ``llm`` block's repair request gets it right. It wants a Bearer token (any).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CATEGORIES = {
    "billing": ("charged", "invoice", "refund", "payment", "subscription"),
    "bug": ("error", "crash", "broken", "bug"),
    "account": ("password", "login", "account"),
}


def triage(ticket: str) -> dict[str, Any]:
    text = ticket.lower()
    category = next(
        (c for c, words in CATEGORIES.items() if any(w in text for w in words)), "other"
    )
    urgency = 4 if "!" in ticket else 2
    return {"category": category, "urgency": urgency}


def answer(body: dict[str, Any]) -> str:
    messages = body["messages"]
    ticket = next(m["content"] for m in messages if m["role"] == "user")
    if "response_format" not in body:
        return (
            "Thank you for writing to us. We are sorry for the trouble and have passed your "
            "message to the right team; you will hear from us within a day."
        )
    verdict = triage(ticket)
    repairing = any(m["role"] == "assistant" for m in messages)
    if "!" in ticket and not repairing:
        verdict["urgency"] = "high"  # the first answer's mistake: not an integer
    return json.dumps(verdict)


def completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    completion_tokens = len(content.split())
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": f"no route {self.path}"}})
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self.reply(401, {"error": {"message": "missing API key"}})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.reply(200, completion(body, answer(body)))

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"fake llm: {format % args}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
