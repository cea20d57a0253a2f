"""``http`` blocks against a real HTTP server on 127.0.0.1 (SPEC 2.3, issue 4 item 1).

Every field: each method, headers, query params, json / body / form, the per-request timeout,
expect_status, JSON and text bodies, redirects, 5xx and 429 retries with Retry-After, the
Idempotency-Key header; and the address policy of ``flowforge run`` versus a worker.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from http_kit import TestServer, run_on_server, serving

import flowforge


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with serving() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_policy_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWFORGE_ALLOW_PRIVATE_NETWORKS", "FLOWFORGE_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)


def workflow(*blocks: dict[str, Any], **options: Any) -> flowforge.Workflow:
    wf = flowforge.Workflow(f"http-{uuid.uuid4().hex[:8]}", **options)
    for block in blocks:
        wf.add({"type": "http", **block})
    return wf


def key() -> str:
    return uuid.uuid4().hex


def error_of(result: flowforge.RunResult, block_id: str) -> dict[str, Any]:
    error = result.block(block_id).error
    assert error is not None, f"block {block_id} did not fail: {result.block(block_id)}"
    return error


# -- what is sent ----------------------------------------------------------------------------------


def test_every_method_is_sent_and_the_json_echo_is_parsed(
    engine: flowforge.Engine, server: TestServer
) -> None:
    methods = ["GET", "post", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND"]
    tag = key()
    wf = workflow(
        *(
            {"id": f"m_{m.lower()}", "method": m, "url": server.url(f"/echo?tag={tag}")}
            for m in methods
        )
    )

    result = engine.run(wf)

    assert result.status == "completed", result.failure_reason
    seen = sorted(s.method for s in server.paths("/echo") if ("tag", tag) in s.query)
    assert seen == sorted(m.upper() for m in methods)
    outputs = result.outputs or {}
    for method in methods:
        output = outputs[f"m_{method.lower()}"]
        assert output["status_code"] == 200
        assert output["headers"]["content-type"] == "application/json"
        if method == "HEAD":
            assert output["body"] is None  # no body to parse
        else:
            assert output["body"]["method"] == method.upper()
            assert output["body"]["path"] == "/echo"


def test_headers_and_query_params_are_sent_with_templates(
    engine: flowforge.Engine, server: TestServer
) -> None:
    wf = workflow(
        {
            "id": "call",
            "url": server.url("/echo?fixed=1"),
            "headers": {
                "X-Token": "{{ params.token }}",
                "X-Count": 3,
                "X-Flag": True,
                "X-Absent": None,
                "Accept": "application/json",
                "X-Name": "Zoë",
            },
            "params": {
                "page": "{{ params.page }}",
                "tag": ["a", "b"],
                "exact": False,
                "missing": None,
                "text": "hé llo&x=1",
            },
        },
        parameters={"token": str, "page": int},
    )

    result = engine.run(wf, {"token": "abc", "page": 2})

    assert result.status == "completed", result.failure_reason
    echo = (result.outputs or {})["call"]["body"]
    assert echo["headers"]["x-token"] == "abc"
    assert echo["headers"]["x-count"] == "3"
    assert echo["headers"]["x-flag"] == "true"
    assert "x-absent" not in echo["headers"]
    assert echo["headers"]["accept"] == "application/json"
    assert echo["headers"]["x-name"].encode("latin-1").decode("utf-8") == "Zoë"  # sent as UTF-8
    assert echo["headers"]["user-agent"].startswith("flowforge-http/")
    assert echo["query"] == [
        ["fixed", "1"],
        ["page", "2"],
        ["tag", "a"],
        ["tag", "b"],
        ["exact", "false"],
        ["text", "hé llo&x=1"],
    ]


def test_json_raw_and_form_bodies(engine: flowforge.Engine, server: TestServer) -> None:
    wf = workflow(
        {
            "id": "as_json",
            "method": "POST",
            "url": server.url(),
            "json": {"n": "{{ params.n }}", "items": [1, "two", None]},
        },
        {"id": "raw", "method": "PUT", "url": server.url(), "body": "plain {{ params.n }}"},
        {
            "id": "raw_typed",
            "method": "POST",
            "url": server.url(),
            "body": "<a>1</a>",
            "headers": {"Content-Type": "application/xml"},
        },
        {
            "id": "as_form",
            "method": "POST",
            "url": server.url(),
            "form": {"name": "Ada Lovelace", "n": "{{ params.n }}", "tag": ["x", "y"]},
        },
        parameters={"n": int},
    )

    result = engine.run(wf, {"n": 7})

    assert result.status == "completed", result.failure_reason
    out = {k: v["body"] for k, v in (result.outputs or {}).items()}
    assert out["as_json"]["headers"]["content-type"] == "application/json"
    assert json.loads(out["as_json"]["body"]) == {"n": 7, "items": [1, "two", None]}
    assert out["raw"]["method"] == "PUT"
    assert out["raw"]["body"] == "plain 7"
    assert out["raw"]["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert out["raw_typed"]["body"] == "<a>1</a>"
    assert out["raw_typed"]["headers"]["content-type"] == "application/xml"
    assert out["as_form"]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert out["as_form"]["body"] == "name=Ada+Lovelace&n=7&tag=x&tag=y"


def test_two_bodies_in_one_block_are_refused_when_declared() -> None:
    with pytest.raises(flowforge.DefinitionError, match="at most one of 'json', 'body' or 'form'"):
        workflow({"id": "both", "url": "http://example.com/", "json": {}, "body": "x"}).compile()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"url": "ftp://example.com/"}, "only http:// and https://"),
        ({"url": "http://example.com/", "method": "GE T"}, "not an HTTP method"),
        ({"url": "http://example.com/", "expect_status": "2yy"}, "not a status code or range"),
        ({"url": "http://example.com/", "expect_status": [200, 700]}, "from 100 to 599"),
        ({"url": "http://example.com/", "headers": {"X-A": "a\r\nX-B: b"}}, "line break"),
        ({"url": "http://example.com/", "headers": {"bad name": "x"}}, "not a valid header"),
        ({"url": "http://example.com/", "params": {"a": {"b": 1}}}, "text, a number or a list"),
        ({"url": "http://example.com/", "max_redirects": -1}, "0 or more"),
    ],
)
def test_invalid_fields_are_refused_when_declared(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(flowforge.DefinitionError, match=problem):
        workflow({"id": "bad", **fields}).compile()


# -- what comes back -------------------------------------------------------------------------------


def test_json_bodies_are_parsed_text_bodies_are_not(
    engine: flowforge.Engine, server: TestServer
) -> None:
    wf = workflow(
        {"id": "json", "url": server.url("/echo")},
        {"id": "text", "url": server.url("/text")},
        {"id": "latin1", "url": server.url("/latin1")},
        {"id": "empty_json", "url": server.url("/nojson")},
        {"id": "bad_json", "url": server.url("/badjson")},
    )

    result = engine.run(wf)

    assert result.block("json").output["body"]["method"] == "GET"
    assert result.block("json").output["headers"]["x-echo"] == "a, b"  # repeated header
    assert result.block("text").output == {
        "status_code": 200,
        "headers": result.block("text").output["headers"],
        "body": "hello, world",
    }
    assert result.block("text").output["headers"]["content-length"] == "12"
    assert result.block("latin1").output["body"] == "café"
    assert result.block("empty_json").output["body"] is None
    assert error_of(result, "bad_json")["type"] == "InvalidJson"
    assert result.block("bad_json").attempts == 1


def test_a_response_larger_than_max_response_bytes_fails(
    engine: flowforge.Engine, server: TestServer
) -> None:
    wf = workflow(
        {"id": "small", "url": server.url("/big?bytes=1000"), "max_response_bytes": 1000},
        {"id": "large", "url": server.url("/big?bytes=1001"), "max_response_bytes": 1000},
    )

    result = engine.run(wf)

    assert result.block("small").output["body"] == "x" * 1000
    assert error_of(result, "large")["type"] == "ResponseTooLarge"


# -- timeouts --------------------------------------------------------------------------------------


def test_the_timeout_bounds_a_slow_request_and_is_retryable(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tag = key()
    wf = workflow(
        {
            "id": "slow",
            "url": server.url(f"/slow?seconds=3&tag={tag}"),
            "timeout": "0.4s",
            "retry": {"max_attempts": 2, "initial_interval": "10ms", "jitter": False},
        },
        {"id": "fast_enough", "url": server.url("/slow?seconds=0.1"), "timeout": "2s"},
    )

    started = time.monotonic()
    result = engine.run(wf)
    elapsed = time.monotonic() - started

    assert result.block("fast_enough").output["body"] == "slow"
    error = error_of(result, "slow")
    assert error["type"] == "Timeout"
    assert result.block("slow").attempts == 2, "a timeout is retried"
    assert len([s for s in server.paths("/slow") if ("tag", tag) in s.query]) == 2
    assert elapsed < 2.5, f"two 0.4 s attempts took {elapsed:.2f}s"


# -- status codes, retries -------------------------------------------------------------------------


def test_expect_status_accepts_codes_ranges_and_templates(
    engine: flowforge.Engine, server: TestServer
) -> None:
    wf = workflow(
        {"id": "code", "url": server.url("/echo?status=404"), "expect_status": 404},
        {"id": "listed", "url": server.url("/echo?status=201"), "expect_status": [200, "201"]},
        {"id": "century", "url": server.url("/echo?status=418"), "expect_status": "4xx"},
        {"id": "span", "url": server.url("/echo?status=302"), "expect_status": "300-399"},
        {"id": "csv", "url": server.url("/echo?status=204"), "expect_status": "200, 204"},
        {
            "id": "templated",
            "url": server.url("/echo?status=409"),
            "expect_status": "{{ params.accepted }}",
        },
        {"id": "default_ok", "url": server.url("/echo?status=299")},
        {"id": "default_no", "url": server.url("/echo?status=404")},
        {"id": "outside", "url": server.url("/echo?status=200"), "expect_status": "201"},
        parameters={"accepted": {"type": "array", "default": [409, "5xx"]}},
    )

    result = engine.run(wf)

    for block_id, status in [
        ("code", 404),
        ("listed", 201),
        ("century", 418),
        ("span", 302),
        ("csv", 204),
        ("templated", 409),
        ("default_ok", 299),
    ]:
        assert result.block(block_id).output["status_code"] == status, block_id
    assert error_of(result, "default_no")["type"] == "HttpStatus"
    assert "404" in error_of(result, "default_no")["message"]
    assert "expected 2xx" in error_of(result, "default_no")["message"]
    assert error_of(result, "outside")["type"] == "HttpStatus"


def test_an_unexpected_4xx_fails_without_retry_and_says_what_came_back(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tag = key()
    wf = workflow(
        {
            "id": "missing",
            "url": server.url(f"/status?code=404&tag={tag}&api_key=s3cr3t"),
            "retry": {"max_attempts": 3, "initial_interval": "10ms"},
        }
    )

    result = engine.run(wf)

    error = error_of(result, "missing")
    assert error["type"] == "HttpStatus"
    assert result.block("missing").attempts == 1
    assert "404 Not Found" in error["message"] and "status 404" in error["message"]
    assert "s3cr3t" not in error["message"], "the query string stays out of messages"
    assert len([s for s in server.paths("/status") if ("tag", tag) in s.query]) == 1


def test_5xx_then_200_is_retried_until_it_succeeds(
    engine: flowforge.Engine, server: TestServer
) -> None:
    first, second = key(), key()
    retry = {"max_attempts": 3, "initial_interval": "20ms", "jitter": False}
    wf = workflow(
        {
            "id": "recovers",
            "url": server.url(f"/flaky?key={first}&fail=2&code=503"),
            "retry": retry,
        },
        {
            "id": "gives_up",
            "url": server.url(f"/flaky?key={second}&fail=5&code=500"),
            "retry": retry,
        },
    )

    result = engine.run(wf)

    assert result.block("recovers").status == "completed"
    assert result.block("recovers").attempts == 3
    assert result.block("recovers").output["status_code"] == 200
    assert error_of(result, "gives_up")["type"] == "HttpStatus"
    assert "500" in error_of(result, "gives_up")["message"]
    assert result.block("gives_up").attempts == 3
    assert len([s for s in server.paths("/flaky") if ("key", second) in s.query]) == 3


def test_a_connection_error_is_retryable(engine: flowforge.Engine) -> None:
    with serving() as closed:
        url = closed.url()
    wf = workflow(
        {
            "id": "refused",
            "url": url,
            "retry": {"max_attempts": 2, "initial_interval": "10ms", "jitter": False},
        }
    )

    result = engine.run(wf)

    assert error_of(result, "refused")["type"] == "ConnectionError"
    assert result.block("refused").attempts == 2


def test_429_retry_after_in_seconds_is_honoured(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tag = key()
    wf = workflow(
        {
            "id": "limited",
            "url": server.url(f"/flaky?key={tag}&fail=1&code=429&retry_after=2"),
            # the block's own backoff would retry after 10 ms: Retry-After overrides it
            "retry": {"max_attempts": 2, "initial_interval": "10ms", "jitter": False},
        }
    )

    result = engine.run(wf)

    assert result.block("limited").status == "completed", result.failure_reason
    assert result.block("limited").attempts == 2
    calls = [s.at for s in server.paths("/flaky") if ("key", tag) in s.query]
    assert len(calls) == 2
    assert 1.9 <= calls[1] - calls[0] < 10, f"retried after {calls[1] - calls[0]:.2f}s"


def test_503_retry_after_as_an_http_date_is_honoured(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tag = key()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    wf = workflow(
        {
            "id": "busy",
            "url": server.url(f"/flaky?key={tag}&fail=1&code=503"),
            "params": {"retry_after": when},
            "retry": {"max_attempts": 2, "initial_interval": "10ms", "jitter": False},
        }
    )

    result = engine.run(wf)

    assert result.block("busy").status == "completed", result.failure_reason
    calls = [s.at for s in server.paths("/flaky") if ("key", tag) in s.query]
    assert len(calls) == 2
    # the date has one-second precision: the wait is between 2 and 3 seconds
    assert 1.5 <= calls[1] - calls[0] < 10, f"retried after {calls[1] - calls[0]:.2f}s"


def test_idempotency_key_is_sent_on_unsafe_methods_and_is_the_same_on_every_attempt(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tags = {name: key() for name in ("post", "get", "own", "none")}
    retry = {"max_attempts": 2, "initial_interval": "10ms", "jitter": False}

    def flaky(name: str) -> str:
        return server.url(f"/flaky?key={tags[name]}&fail=1&code=500")

    wf = workflow(
        {"id": "post", "method": "POST", "url": flaky("post"), "json": {"a": 1}, "retry": retry},
        {"id": "get", "url": flaky("get"), "retry": retry},
        {
            "id": "own",
            "method": "PUT",
            "url": flaky("own"),
            "headers": {"idempotency-key": "mine-1"},
            "retry": retry,
        },
        {
            "id": "none",
            "method": "DELETE",
            "url": flaky("none"),
            "headers": {"Idempotency-Key": ""},
            "retry": retry,
        },
    )

    result = engine.run(wf)

    assert result.status == "completed", result.failure_reason

    def sent(name: str) -> list[str | None]:
        calls = [s for s in server.paths("/flaky") if ("key", tags[name]) in s.query]
        assert len(calls) == 2, name
        return [s.headers.get("idempotency-key") for s in calls]

    assert sent("post") == [f"{result.run_id}:post"] * 2
    assert sent("get") == [None, None]
    assert sent("own") == ["mine-1", "mine-1"]
    assert sent("none") == [None, None]


# -- redirects -------------------------------------------------------------------------------------


def test_redirects_are_followed_hop_by_hop(engine: flowforge.Engine, server: TestServer) -> None:
    to_echo = server.url("/echo?landed=1")
    wf = workflow(
        {"id": "chain", "url": server.url("/chain?n=3")},
        {"id": "absolute", "url": server.url(f"/redirect?to={quote(to_echo)}")},
        {
            "id": "see_other",
            "method": "POST",
            "url": server.url(f"/redirect?code=303&to={quote(to_echo)}"),
            "json": {"a": 1},
        },
        {
            "id": "temporary",
            "method": "POST",
            "url": server.url(f"/redirect?code=307&to={quote(to_echo)}"),
            "json": {"a": 1},
        },
        {"id": "too_many", "url": server.url("/chain?n=3"), "max_redirects": 2},
        {
            "id": "not_followed",
            "url": server.url(f"/redirect?to={quote(to_echo)}"),
            "follow_redirects": False,
            "expect_status": "3xx",
        },
        {
            "id": "not_followed_default",
            "url": server.url(f"/redirect?to={quote(to_echo)}"),
            "follow_redirects": False,
        },
    )

    result = engine.run(wf)

    assert result.block("chain").output["body"]["query"] == [["n", "0"]]
    assert result.block("absolute").output["body"]["query"] == [["landed", "1"]]
    see_other = result.block("see_other").output["body"]
    assert (see_other["method"], see_other["body"]) == ("GET", "")  # 303: GET, no body
    temporary = result.block("temporary").output["body"]
    assert (temporary["method"], temporary["body"]) == ("POST", '{"a":1}')  # 307 keeps both
    too_many = error_of(result, "too_many")
    assert too_many["type"] == "TooManyRedirects"
    assert "more than 2 redirect" in too_many["message"]
    assert result.block("not_followed").output["status_code"] == 302
    assert result.block("not_followed").output["headers"]["location"] == to_echo
    assert error_of(result, "not_followed_default")["type"] == "HttpStatus"


def quote(url: str) -> str:
    return urllib.parse.quote(url, safe="")


# -- the address policy: flowforge run versus a worker ---------------------------------------------


def test_flowforge_run_reaches_loopback_and_a_worker_refuses_it(
    engine: flowforge.Engine, server: TestServer
) -> None:
    tag = key()
    wf = workflow({"id": "local", "url": server.url(f"/echo?tag={tag}")})

    mine = engine.run(wf)  # the user's own machine: private addresses are theirs
    served = run_on_server(engine, wf)  # a shared worker: a server

    assert mine.block("local").output["status_code"] == 200
    error = error_of(served, "local")
    assert error["type"] == "ForbiddenAddress"
    assert "127.0.0.1" in error["message"] and "loopback" in error["message"]
    assert served.block("local").attempts == 1, "never retried"
    assert len([s for s in server.paths("/echo") if ("tag", tag) in s.query]) == 1


def test_a_worker_reaches_loopback_when_configuration_allows_it(
    engine: flowforge.Engine, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = workflow({"id": "allowed", "url": server.url()})

    monkeypatch.setenv("FLOWFORGE_ALLOWED_NETWORKS", "10.0.0.0/8, 127.0.0.0/8")
    by_network = run_on_server(engine, wf)
    monkeypatch.delenv("FLOWFORGE_ALLOWED_NETWORKS")
    monkeypatch.setenv("FLOWFORGE_ALLOW_PRIVATE_NETWORKS", "1")
    by_switch = run_on_server(engine, wf)

    assert by_network.block("allowed").output["status_code"] == 200
    assert by_switch.block("allowed").output["status_code"] == 200


def test_flowforge_run_refuses_private_addresses_when_configuration_says_so(
    engine: flowforge.Engine, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_ALLOW_PRIVATE_NETWORKS", "0")
    result = engine.run(workflow({"id": "local", "url": server.url()}))

    assert error_of(result, "local")["type"] == "ForbiddenAddress"
