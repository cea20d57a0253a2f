"""``llm`` blocks (issue 4) against a small OpenAI-compatible server on 127.0.0.1: prompt and
messages, structured output validated with one repair attempt, retries on 429 / 5xx /
connection errors with Retry-After honoured, auth errors, token usage kept with the attempt,
and an API key that never shows in a log, an error or an output."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_llm import FakeLlm, Reply, completion, error, fake_llm

import flowforge

KEY = "sk-test-Key/with+odd=chars-3c9e1f"
SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["category", "urgency"],
    "additionalProperties": False,
}
FAST_RETRY = {"max_attempts": 3, "initial_interval": "10ms", "jitter": False}


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with fake_llm() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FF_TEST_OPENAI_KEY", KEY)


def _one(block: dict[str, Any], base_url: str, **parameters: Any) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "ask",
            "parameters": {
                "openai": {"type": "secret", "source": "env:FF_TEST_OPENAI_KEY"},
                **parameters,
            },
            "blocks": [
                {
                    "id": "ask",
                    "type": "llm",
                    "base_url": base_url,
                    "model": "fake-model",
                    "api_key": "{{ secrets.openai }}",
                    **block,
                }
            ],
        }
    )


def _visible(engine: flowforge.Engine, result: flowforge.RunResult) -> str:
    """Everything a user can see of a run: record, events and logs."""
    shown: list[Any] = [result.to_dict(), engine.get(result.run_id).to_dict()]
    shown += [(e.type, e.data) for e in engine.events(result.run_id)]
    shown += [line.message for line in engine.logs(result.run_id)]
    return json.dumps(shown, default=str)


# -- what is sent, what comes back -------------------------------------------------------------


def test_a_prompt_gives_the_reply_text(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion("Paris is the capital of France."))
    wf = _one(
        {"prompt": "Capital of {{ params.country }}?"}, llm.base_url, country={"type": "string"}
    )

    result = engine.run(wf, {"country": "France"})

    assert result.status == "completed", result.block("ask").error
    assert result.block("ask").output == "Paris is the capital of France."
    [request] = llm.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "Capital of France?"}],
    }


def test_system_temperature_and_max_tokens_are_sent(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion("ok"))
    wf = _one(
        {
            "prompt": "hi",
            "system": "You answer in {{ params.language }}.",
            "temperature": "{{ params.temperature }}",
            "max_tokens": 64,
        },
        llm.base_url + "/",  # a trailing slash is fine
        language={"type": "string"},
        temperature={"type": "number"},
    )

    engine.run(wf, {"language": "French", "temperature": 0.2})

    [request] = llm.received
    assert request.path == "/v1/chat/completions"
    assert request.body["messages"] == [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "hi"},
    ]
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 64


def test_messages_are_sent_as_given_with_their_templates_rendered(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(completion("4"))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And {{ params.a }}+{{ params.a }}?"},
    ]
    wf = _one({"messages": messages}, llm.base_url, a={"type": "integer"})

    result = engine.run(wf, {"a": 2})

    assert result.block("ask").output == "4"
    assert llm.received[0].body["messages"][:3] == messages[:3]
    assert llm.received[0].body["messages"][3] == {"role": "user", "content": "And 2+2?"}


def test_messages_may_come_whole_from_a_template(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion("hello"))
    wf = _one({"messages": "{{ params.chat }}"}, llm.base_url, chat={"type": "array"})

    engine.run(wf, {"chat": [{"role": "user", "content": "say hello"}]})

    assert llm.received[0].body["messages"] == [{"role": "user", "content": "say hello"}]


def test_no_api_key_sends_no_authorization(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion("local model"))
    wf = flowforge.Workflow.from_dict(
        {
            "id": "local",
            "blocks": [
                {"id": "ask", "type": "llm", "base_url": llm.base_url, "model": "m", "prompt": "x"}
            ],
        }
    )

    assert engine.run(wf).block("ask").output == "local model"
    assert "Authorization" not in llm.received[0].headers


# -- structured output --------------------------------------------------------------------------


def test_json_schema_asks_for_structured_output_and_gives_the_parsed_value(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(completion('{"category": "billing", "urgency": 4}'))
    wf = _one({"prompt": "Triage: I was charged twice", "json_schema": SCHEMA}, llm.base_url)

    result = engine.run(wf)

    assert result.block("ask").output == {"category": "billing", "urgency": 4}
    assert llm.received[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ask", "schema": SCHEMA, "strict": False},
    }


def test_strict_is_passed_on(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion('{"category": "bug", "urgency": 1}'))
    wf = _one({"prompt": "x", "json_schema": SCHEMA, "strict": True}, llm.base_url)

    engine.run(wf)

    assert llm.received[0].body["response_format"]["json_schema"]["strict"] is True


def test_an_invalid_reply_is_repaired_once_with_the_validation_error(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(
        completion('{"category": "billing", "urgency": "high"}', 30, 12),
        completion('{"category": "billing", "urgency": 5}', 60, 9),
    )
    wf = _one({"prompt": "Triage: charged twice!", "json_schema": SCHEMA}, llm.base_url)

    result = engine.run(wf)

    block = result.block("ask")
    assert (block.status, block.attempts) == ("completed", 1)
    assert block.output == {"category": "billing", "urgency": 5}
    assert len(llm.received) == 2
    first, repair = (r.body for r in llm.received)
    assert repair["messages"][:2] == [
        *first["messages"],
        {"role": "assistant", "content": '{"category": "billing", "urgency": "high"}'},
    ]
    asked = repair["messages"][2]
    assert asked["role"] == "user"
    assert "$['urgency']: 'high' is not of type 'integer'" in asked["content"]
    assert json.dumps(SCHEMA, separators=(",", ":")) in asked["content"]
    assert repair["response_format"] == first["response_format"]
    assert block.annotations == {
        "usage": {"prompt_tokens": 90, "completion_tokens": 21, "total_tokens": 111, "requests": 2}
    }


def test_a_reply_that_is_not_json_is_repaired_and_a_code_fence_is_accepted(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(
        completion("Sure! The category is billing."),
        completion('```json\n{"category": "other", "urgency": 2}\n```'),
    )
    wf = _one({"prompt": "x", "json_schema": SCHEMA}, llm.base_url)

    result = engine.run(wf)

    assert result.block("ask").output == {"category": "other", "urgency": 2}
    assert "it is not valid JSON" in llm.received[1].body["messages"][-1]["content"]


def test_a_reply_still_invalid_after_the_repair_fails_without_retry(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(
        completion('{"category": "spam", "urgency": 3}'),
        completion('{"category": "spam", "urgency": 3}'),
        completion('{"category": "bug", "urgency": 3}'),  # never asked for
    )
    wf = _one({"prompt": "x", "json_schema": SCHEMA, "retry": FAST_RETRY}, llm.base_url)

    result = engine.run(wf)
    block = result.block("ask")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None
    assert block.error["type"] == "InvalidLlmOutput"
    assert "still invalid after one repair attempt" in block.error["message"]
    assert "'spam' is not one of ['billing', 'bug', 'other']" in block.error["message"]
    assert len(llm.received) == 2
    # the tokens the failed attempt spent are kept with it
    failed = next(e for e in engine.events(result.run_id) if e.type == "block.failed")
    assert failed.data["annotations"]["usage"]["requests"] == 2


# -- errors and retries -------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_that_delay(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(error(429, "Rate limit reached", **{"Retry-After": "1"}), completion("done"))
    wf = _one({"prompt": "x", "retry": FAST_RETRY}, llm.base_url)

    result = engine.run(wf)

    block = result.block("ask")
    assert (block.status, block.attempts, block.output) == ("completed", 2, "done")
    first, second = llm.received
    assert second.at - first.at >= 0.9  # Retry-After, not the 10 ms of the retry policy
    retrying = [e for e in engine.events(result.run_id) if e.type == "block.retrying"]
    assert json.dumps(retrying[0].data).count("LlmRateLimited") >= 1


def test_5xx_is_retried_by_the_retry_policy(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(error(503, "overloaded"), error(500, "oops"), completion("third time"))
    wf = _one({"prompt": "x", "retry": FAST_RETRY}, llm.base_url)

    block = engine.run(wf).block("ask")

    assert (block.status, block.attempts, block.output) == ("completed", 3, "third time")


def test_5xx_on_every_attempt_fails_with_the_server_message(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(*[error(502, "bad gateway upstream")] * 2)
    wf = _one({"prompt": "x", "retry": {**FAST_RETRY, "max_attempts": 2}}, llm.base_url)

    block = engine.run(wf).block("ask")

    assert (block.status, block.attempts) == ("failed", 2)
    assert block.error is not None
    assert block.error["type"] == "LlmServerError"
    assert "answered 502: 'bad gateway upstream'" in block.error["message"]


def test_401_is_an_auth_error_not_retried_and_the_key_is_not_shown(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(error(401, f"Incorrect API key provided: {KEY}"))
    wf = _one({"prompt": "x", "retry": FAST_RETRY}, llm.base_url)

    result = engine.run(wf)

    block = result.block("ask")
    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None
    assert block.error["type"] == "LlmAuthError"
    assert "answered 401: 'Incorrect API key provided: ***'" in block.error["message"]
    assert KEY not in _visible(engine, result)


def test_403_is_an_auth_error(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(error(403, "model not allowed for this key"))

    block = engine.run(_one({"prompt": "x"}, llm.base_url)).block("ask")

    assert block.error is not None and block.error["type"] == "LlmAuthError"


def test_other_4xx_fail_at_once_with_the_server_message(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(error(400, "Invalid schema for response_format 'ask'"))
    wf = _one({"prompt": "x", "json_schema": SCHEMA, "retry": FAST_RETRY}, llm.base_url)

    block = engine.run(wf).block("ask")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None
    assert block.error["type"] == "LlmError"
    assert "answered 400: \"Invalid schema for response_format 'ask'\"" in block.error["message"]


def test_an_answer_that_is_not_a_chat_completion_is_an_error(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    llm.script(Reply(body=b"<html>welcome to nginx</html>"))

    block = engine.run(_one({"prompt": "x"}, llm.base_url)).block("ask")

    assert block.error is not None and block.error["type"] == "LlmError"
    assert "not a chat completion: '<html>welcome to nginx</html>'" in block.error["message"]


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_retried(engine: flowforge.Engine) -> None:
    url = f"http://127.0.0.1:{_unused_port()}/v1"
    wf = _one({"prompt": "x", "retry": {**FAST_RETRY, "max_attempts": 2}}, url)

    block = engine.run(wf).block("ask")

    assert (block.status, block.attempts) == ("failed", 2)
    assert block.error is not None and block.error["type"] == "LlmConnectionError"


def test_an_unknown_host_is_a_connection_error(engine: flowforge.Engine) -> None:
    wf = _one({"prompt": "x", "request_timeout": "5s"}, "http://no-such-host.invalid/v1")

    block = engine.run(wf).block("ask")

    assert block.error is not None and block.error["type"] == "LlmConnectionError"
    assert "could not resolve host 'no-such-host.invalid'" in block.error["message"]


def test_request_timeout_bounds_each_request(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(Reply(body=completion("late").body, delay=2))
    wf = _one({"prompt": "x", "request_timeout": "300ms"}, llm.base_url)
    started = time.monotonic()

    block = engine.run(wf).block("ask")

    assert time.monotonic() - started < 1.8
    assert block.error is not None
    assert block.error["type"] == "LlmTimeout"
    assert "within 0.3s" in block.error["message"]


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "http://", "http://[::1/v1"])
def test_a_base_url_that_is_not_an_http_url_fails_without_retry(
    engine: flowforge.Engine, url: str
) -> None:
    wf = _one({"prompt": "x", "retry": FAST_RETRY}, url)

    block = engine.run(wf).block("ask")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None and block.error["type"] == "InvalidInput", block.error


def test_refused_with_no_text_is_an_error(engine: flowforge.Engine, llm: FakeLlm) -> None:
    reply = completion(None)
    reply.body["choices"][0]["message"]["refusal"] = "I can't help with that."
    llm.script(reply)

    block = engine.run(_one({"prompt": "x"}, llm.base_url)).block("ask")

    assert block.error is not None and block.error["type"] == "LlmError"
    assert "the model refused: I can't help with that." in block.error["message"]


# -- usage, logs, the key -----------------------------------------------------------------------


def test_usage_is_kept_with_the_attempt_and_logged(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(completion("fine", prompt_tokens=21, completion_tokens=4))

    result = engine.run(_one({"prompt": "x"}, llm.base_url))

    usage = {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25, "requests": 1}
    assert result.block("ask").annotations == {"usage": usage}
    assert engine.get(result.run_id).to_dict()["blocks"][0]["annotations"] == {"usage": usage}
    [completed] = [e for e in engine.events(result.run_id) if e.type == "block.completed"]
    assert completed.data["annotations"] == {"usage": usage}
    messages = [line.message for line in engine.logs(result.run_id, "ask")]
    assert "token usage: 21 prompt + 4 completion = 25 tokens in 1 request(s)" in messages


def test_the_api_key_is_in_no_log_error_or_output(engine: flowforge.Engine, llm: FakeLlm) -> None:
    llm.script(
        completion(f"echoing your key: {KEY}"),
        error(500, f"upstream rejected key {KEY}"),
        completion("{}"),
    )
    wf = flowforge.Workflow.from_dict(
        {
            "id": "leaks",
            "parameters": {"openai": {"type": "secret", "source": "env:FF_TEST_OPENAI_KEY"}},
            "blocks": [
                {
                    "id": block_id,
                    "type": "llm",
                    "base_url": llm.base_url + ("?key={{ secrets.openai }}" if n == 1 else ""),
                    "model": "m",
                    "api_key": "{{ secrets.openai }}",
                    "prompt": "x",
                    "continue_on_failure": True,
                    "depends_on": [] if n == 0 else [f"b{n - 1}"],
                }
                for n, block_id in enumerate(["b0", "b1", "b2"])
            ],
        }
    )

    result = engine.run(wf)

    assert result.block("b0").output == "echoing your key: ***"
    assert result.block("b1").error is not None
    assert result.block("b1").error["message"].endswith("'upstream rejected key ***'")
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in llm.received)
    assert KEY not in _visible(engine, result)


# -- the server policy --------------------------------------------------------------------------


def test_on_a_server_a_private_base_url_is_refused_before_any_request(
    store_url: str, llm: FakeLlm
) -> None:
    with flowforge.Engine(store_url, policy=flowforge.BlockPolicy.for_server({})) as engine:
        block = engine.run(_one({"prompt": "x", "retry": FAST_RETRY}, llm.base_url)).block("ask")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None and block.error["type"] == "ForbiddenAddress"
    assert "127.0.0.1" in block.error["message"]
    assert llm.received == []


def test_on_a_server_an_allowed_network_is_reachable(store_url: str, llm: FakeLlm) -> None:
    llm.script(completion("inside"))
    policy = flowforge.BlockPolicy.for_server({"FLOWFORGE_ALLOWED_NETWORKS": "127.0.0.1/32"})
    with flowforge.Engine(store_url, policy=policy) as engine:
        block = engine.run(_one({"prompt": "x"}, llm.base_url)).block("ask")

    assert block.output == "inside"


# -- definitions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "give exactly one of 'prompt' or 'messages'"),
        (
            {"prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            "give exactly one of 'prompt' or 'messages'",
        ),
        ({"messages": []}, "give at least one message"),
        ({"messages": [{"role": "robot", "content": "y"}]}, "role 'robot' is not one of"),
        ({"messages": [{"role": "user"}]}, "give exactly 'role' and 'content'"),
        ({"prompt": "x", "json_schema": {"type": "nope"}}, "not a valid JSON Schema"),
        ({"prompt": "x", "temperature": 3}, "temperature"),
    ],
)
def test_invalid_fields_are_definition_errors(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(flowforge.DefinitionError) as caught:
        flowforge.Workflow.from_dict(
            {
                "id": "bad",
                "blocks": [
                    {"id": "ask", "type": "llm", "base_url": "http://x/v1", "model": "m", **fields}
                ],
            }
        )
    assert expected in str(caught.value)


def test_a_key_that_is_not_a_secret_is_still_scrubbed_from_server_messages(
    engine: flowforge.Engine, llm: FakeLlm
) -> None:
    """The engine redacts ``secrets.*``; the block also removes its own key from what the
    server says, whatever the key's origin."""
    llm.script(error(401, "Incorrect API key provided: plain-key-123"))
    wf = _one({"prompt": "x", "api_key": "{{ params.key }}"}, llm.base_url, key={"type": "string"})

    block = engine.run(wf, {"key": "plain-key-123"}).block("ask")

    assert block.error is not None
    assert "answered 401: 'Incorrect API key provided: ***'" in block.error["message"]
    assert llm.received[0].headers["Authorization"] == "Bearer plain-key-123"
