"""``http``: one HTTP request (SPEC 2.3), through the SSRF guard of ``flowforge.blocks.ssrf``.

Fields: ``method``, ``url``, ``headers``, ``params``, ``json`` / ``body`` / ``form``,
``expect_status``, ``follow_redirects``, ``max_redirects``, ``max_response_bytes``, and the
common ``timeout``, which bounds the attempt — one request with its redirects — and is given to
httpx for each step (connect, send, read); without one, a request has 30 seconds.

The output is ``{status_code, headers, body}``; the body is parsed when the response is JSON.
A status outside ``expect_status`` fails the attempt with error type ``HttpStatus``: retryable
for 5xx and 429 (after ``Retry-After`` when the response gives one), not for the others.

This module is what a definition imports to validate an ``http`` block: it does not import
httpx (``flowforge.blocks.http_client`` does, when a block runs).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from flowforge.definition.block import Block
from flowforge.definition.fields import Templated, is_template_text
from flowforge.errors import BlockError, NonRetryableError, RetryLater

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take when the block has no ``timeout``."""
MAX_RETRY_AFTER = 24 * 3600.0
"""A ``Retry-After`` longer than this (a day) is capped to it."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods sent without an ``Idempotency-Key``: they change nothing by definition."""
IDEMPOTENCY_HEADER = "Idempotency-Key"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_ITEM = re.compile(r"^\s*(?:([1-5])[xX]{2}|(\d{3})(?:\s*-\s*(\d{3}))?)\s*$")
_SCALARS = (str, int, float, bool)


class HttpBlock(Block):
    """One HTTP request; output ``{status_code, headers, body}``."""

    type_name: ClassVar[str] = "http"

    method: str = "GET"
    url: str
    headers: Templated[dict[str, Any]] = Field(default_factory=dict)
    params: Templated[dict[str, Any]] = Field(default_factory=dict)
    json_: Any = Field(None, alias="json")
    body: str | None = None
    form: Templated[dict[str, Any]] | None = None
    expect_status: Templated[int | str | list[int | str]] = "2xx"
    follow_redirects: Templated[bool] = True
    max_redirects: Templated[int] = 10
    max_response_bytes: Templated[int] = 10 * 1024 * 1024

    @field_validator("method")
    @classmethod
    def _method_is_a_token(cls, value: str) -> str:
        if not is_template_text(value) and not _TOKEN.match(value):
            raise ValueError(f"{value!r} is not an HTTP method (GET, POST, PUT, PATCH, ...)")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not is_template_text(value) and not re.match(r"^https?://", value, re.IGNORECASE):
            raise ValueError(f"{value!r}: only http:// and https:// URLs are allowed")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_are_fields(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name, item in value.items():
                if not _TOKEN.match(str(name)):
                    raise ValueError(f"{name!r} is not a valid header name")
                if item is not None and not isinstance(item, _SCALARS):
                    raise ValueError(f"header {name!r}: a value must be text or a number")
                if isinstance(item, str) and not is_template_text(item) and _has_newline(item):
                    raise ValueError(f"header {name!r}: a value cannot contain a line break")
        return value

    @field_validator("params", "form")
    @classmethod
    def _pairs_are_scalars(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name, item in value.items():
                items = item if isinstance(item, list) else [item]
                if not all(i is None or isinstance(i, _SCALARS) for i in items):
                    raise ValueError(f"{name!r}: a value must be text, a number or a list of them")
        return value

    @field_validator("expect_status")
    @classmethod
    def _status_ranges(cls, value: Any) -> Any:
        if not is_template_text(value):
            status_ranges(value)
        return value

    @field_validator("max_redirects", "max_response_bytes")
    @classmethod
    def _not_negative(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 or more")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HttpBlock:
        given = [
            n
            for n, v in (("json", self.json_), ("body", self.body), ("form", self.form))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give at most one of 'json', 'body' or 'form' (got {given})")
        return self

    async def run(self, ctx: Any) -> dict[str, Any]:
        from flowforge.blocks.http_client import Outgoing, fetch

        method = self.method.upper()
        outgoing = Outgoing(
            method=method,
            url=self.url,
            headers=self._headers(method, ctx.idempotency_key),
            params=_pairs(self.params),
            content=None if self.body is None else self.body.encode("utf-8"),
            json=self.json_,
            has_json=self.json_ is not None,
            form=None if self.form is None else _pairs(self.form),
            timeout=self.timeout or DEFAULT_TIMEOUT,
            follow_redirects=bool(self.follow_redirects),
            max_redirects=int(self.max_redirects),
            max_response_bytes=int(self.max_response_bytes),
        )
        reply = await fetch(outgoing, ctx.policy, ctx.logger)
        headers = _header_map(reply.headers)
        where = f"{method} {reply.url}"
        if not status_matches(reply.status_code, status_ranges(self.expect_status)):
            raise status_error(
                where, reply.status_code, reply.reason, headers, reply.content, self.expect_status
            )
        return {
            "status_code": reply.status_code,
            "headers": headers,
            "body": parse_body(where, method, headers, reply.content),
        }

    def _headers(self, method: str, idempotency_key: str) -> list[tuple[str, str]]:
        headers = [(str(k), _text(v)) for k, v in self.headers.items() if v is not None]
        names = {name.lower() for name, _ in headers}
        if method not in SAFE_METHODS and IDEMPOTENCY_HEADER.lower() not in names:
            headers.append((IDEMPOTENCY_HEADER, idempotency_key))
        if self.body is not None and "content-type" not in names:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        # a header set to "" is not sent: how to leave out the Idempotency-Key
        return [(name, value) for name, value in headers if value != ""]


# -- pure helpers (tested directly) ----------------------------------------------------------------


def status_ranges(value: Any) -> list[tuple[int, int]]:
    """``expect_status`` as inclusive ranges: ``200``, ``"2xx"``, ``"200-299"``, ``"200,204"``
    or a list of those. Raises ``ValueError`` with what is wrong."""
    items = value if isinstance(value, list) else [value]
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError(f"{item!r} is not a status code or range ('2xx', '200-299', 201)")
        parts = [item] if isinstance(item, int) else [p for p in item.split(",") if p.strip()]
        if not parts:
            raise ValueError("an empty status list")
        for part in parts:
            ranges.append(_status_range(part))
    if not ranges:
        raise ValueError("give at least one status code or range")
    return ranges


def _status_range(part: int | str) -> tuple[int, int]:
    if isinstance(part, int):
        low = high = part
    else:
        match = _STATUS_ITEM.match(part)
        if match is None:
            raise ValueError(f"{part!r} is not a status code or range ('2xx', '200-299', '201')")
        century, low_text, high_text = match.groups()
        if century is not None:
            low, high = int(century) * 100, int(century) * 100 + 99
        else:
            low = int(low_text)
            high = int(high_text) if high_text is not None else low
    if not (100 <= low <= high <= 599):
        raise ValueError(f"{part!r}: status codes go from 100 to 599, low to high")
    return low, high


def status_matches(status: int, ranges: list[tuple[int, int]]) -> bool:
    return any(low <= status <= high for low, high in ranges)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None when absent or
    unreadable. A date in the past gives 0; anything over a day gives a day."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def status_error(
    where: str,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    content: bytes,
    expected: Any,
) -> BlockError:
    """The error for an unexpected status: retryable for 5xx and 429 (a ``RetryLater`` when
    the response says when), not for the others. Error type ``HttpStatus`` either way."""
    snippet = content[:300].decode("utf-8", errors="replace").strip()
    message = f"{where} answered {status} {reason}".rstrip() + f" (expected {_expected(expected)})"
    if snippet:
        message += f": {snippet}"
    if status != 429 and status < 500:
        return NonRetryableError(message, error_type="HttpStatus")
    delay = retry_after_seconds(headers.get("retry-after"))
    if delay is None:
        return BlockError(message, error_type="HttpStatus")
    error = RetryLater(f"{message} (retry after {delay:g}s)", delay=delay)
    error.error_type = "HttpStatus"
    return error


def parse_body(where: str, method: str, headers: Mapping[str, str], content: bytes) -> Any:
    """The JSON value when the response is JSON (null when empty), else the text."""
    if method == "HEAD":
        return None if _is_json(headers) else ""
    if _is_json(headers):
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise NonRetryableError(
                f"{where}: the response says it is JSON but is not: {exc}",
                error_type="InvalidJson",
            ) from None
    return content.decode(_charset(headers) or "utf-8", errors="replace")


def _is_json(headers: Mapping[str, str]) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _charset(headers: Mapping[str, str]) -> str | None:
    for part in headers.get("content-type", "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                "".encode(charset)
            except LookupError:
                return None
            return charset
    return None


def _header_map(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ', '."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _pairs(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query or form pairs: a list gives the name once per item; None leaves it out."""
    pairs: list[tuple[str, str]] = []
    for name, value in mapping.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append((str(name), _text(item)))
    return pairs


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _has_newline(text: str) -> bool:
    return "\r" in text or "\n" in text


def _expected(value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    return ", ".join(str(item) for item in items)
