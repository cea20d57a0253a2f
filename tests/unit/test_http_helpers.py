"""The ``http`` block's pure decisions: ``expect_status``, ``Retry-After``, status errors and
body parsing (``flowforge.blocks.http``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowforge.blocks.http import (
    MAX_RETRY_AFTER,
    parse_body,
    retry_after_seconds,
    status_error,
    status_matches,
    status_ranges,
)
from flowforge.errors import BlockError, NonRetryableError, RetryLater


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        ("2xx", [(200, 299)]),
        ("4XX", [(400, 499)]),
        (204, [(204, 204)]),
        ("204", [(204, 204)]),
        ("200-299", [(200, 299)]),
        ("200 - 201", [(200, 201)]),
        ("200, 204,3xx", [(200, 200), (204, 204), (300, 399)]),
        ([200, "3xx", "404-405"], [(200, 200), (300, 399), (404, 405)]),
    ],
)
def test_expect_status_forms(value: object, ranges: list[tuple[int, int]]) -> None:
    assert status_ranges(value) == ranges


@pytest.mark.parametrize("value", ["2yy", "6xx", "299-200", 99, 600, "", [], True, [1.5], "20"])
def test_bad_expect_status_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        status_ranges(value)


def test_status_matches() -> None:
    assert status_matches(299, status_ranges("2xx"))
    assert not status_matches(300, status_ranges("2xx"))
    assert status_matches(404, status_ranges([200, 404]))


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 01 Jan 2025 12:00:30 GMT", 30.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # in the past: at once
        ("99999999", MAX_RETRY_AFTER),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


def test_status_errors_are_retryable_for_5xx_and_429_only() -> None:
    not_found = status_error("GET u", 404, "Not Found", {}, b"gone", "2xx")
    assert isinstance(not_found, NonRetryableError)
    assert not_found.error_type == "HttpStatus"
    assert str(not_found) == "GET u answered 404 Not Found (expected 2xx): gone"

    unavailable = status_error("GET u", 503, "Service Unavailable", {}, b"", "2xx")
    assert type(unavailable) is BlockError and unavailable.retryable
    assert unavailable.error_type == "HttpStatus"

    limited = status_error("GET u", 429, "Too Many Requests", {"retry-after": "7"}, b"", [200])
    assert isinstance(limited, RetryLater)
    assert (limited.delay, limited.error_type, limited.retryable) == (7.0, "HttpStatus", True)


def test_bodies_are_parsed_when_json() -> None:
    json_headers = {"content-type": "application/json; charset=utf-8"}
    assert parse_body("GET u", "GET", json_headers, b'{"a": [1]}') == {"a": [1]}
    assert parse_body("GET u", "GET", {"content-type": "application/hal+json"}, b"3") == 3
    assert parse_body("GET u", "GET", json_headers, b"  ") is None
    assert parse_body("GET u", "GET", {"content-type": "text/plain"}, b'{"a": 1}') == '{"a": 1}'
    assert parse_body("GET u", "GET", {}, "é".encode()) == "é"
    assert parse_body("HEAD u", "HEAD", {"content-type": "text/html"}, b"") == ""
    with pytest.raises(NonRetryableError) as invalid:
        parse_body("GET u", "GET", json_headers, b"{")
    assert invalid.value.error_type == "InvalidJson"


def test_validating_an_http_block_does_not_import_httpx() -> None:
    """httpx is imported when a block runs: ``flowforge validate`` and the start of
    ``flowforge run`` do not pay for it."""
    import subprocess
    import sys

    script = (
        "import sys, flowforge\n"
        "wf = flowforge.Workflow('w')\n"
        "wf.add({'id': 'a', 'type': 'http', 'url': 'http://example.com/', 'json': {'a': 1}})\n"
        "wf.compile()\n"
        "print('flowforge.blocks.http' in sys.modules, 'httpx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "False"]
