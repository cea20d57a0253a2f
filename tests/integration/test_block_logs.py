"""Block logs (issue 4): what ``ctx.logger`` receives is kept per attempt, shown by
``Engine.logs`` / ``flowforge runs logs``, and never holds a secret in any form it is likely
to leak in."""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import pytest
from integration_kit import store_bytes

import flowforge

CANARY = 'c4n4ry/"Tok+en" &é=9'
FORMS = {
    "as is": CANARY,
    "url-encoded": urllib.parse.quote(CANARY, safe=""),
    "url-encoded (plus)": urllib.parse.quote_plus(CANARY),
    "base64": base64.b64encode(CANARY.encode()).decode(),
    "json-escaped": json.dumps(CANARY)[1:-1],
}


def chatty(token: str, ctx: Any) -> str:
    ctx.logger.info("starting attempt %d", ctx.attempt)
    for name in FORMS:
        ctx.logger.warning("token %s: %s", name, _form(token, name))
    ctx.logger.debug("details: %s", {"n": 1})
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "done"


def _form(token: str, name: str) -> str:
    return {
        "as is": token,
        "url-encoded": urllib.parse.quote(token, safe=""),
        "url-encoded (plus)": urllib.parse.quote_plus(token),
        "base64": base64.b64encode(token.encode()).decode(),
        "json-escaped": json.dumps(token)[1:-1],
    }[name]


def _workflow() -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "chatty",
            "parameters": {"token": {"type": "secret", "source": "env:FF_TEST_CANARY"}},
            "blocks": [
                {
                    "id": "talk",
                    "type": "python",
                    "function": f"{__name__}:chatty",
                    "args": {"token": "{{ secrets.token }}"},
                    "retry": {"max_attempts": 2, "initial_interval": "10ms"},
                },
                {
                    "id": "each",
                    "type": "for_each",
                    "items": [1, 2],
                    "do": {
                        "type": "python",
                        "function": f"{__name__}:item_log",
                        "args": {"x": "{{ item }}"},
                    },
                },
            ],
        }
    )


def item_log(x: int, ctx: Any) -> int:
    ctx.logger.info("item %d", x)
    return x


def test_logs_are_kept_per_attempt_in_order(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_TEST_CANARY", CANARY)
    result = engine.run(_workflow())
    assert result.status == "completed"
    talk = engine.logs(result.run_id, "talk")
    assert [(x.attempt, x.line, x.level) for x in talk if x.attempt == 1][:2] == [
        (1, 1, "INFO"),
        (1, 2, "WARNING"),
    ]
    assert {x.attempt for x in talk} == {1, 2}
    assert talk[0].message == "starting attempt 1"
    assert any(x.level == "DEBUG" and x.message == "details: {'n': 1}" for x in talk)
    everything = engine.logs(result.run_id)
    assert [x.message for x in everything if x.block_id.startswith("each[")] == [
        "item 1",
        "item 2",
    ]
    assert engine.logs(result.run_id, "each[1]")[0].message == "item 2"


def test_no_form_of_a_secret_reaches_logs_or_the_database(
    engine: flowforge.Engine, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_TEST_CANARY", CANARY)
    result = engine.run(_workflow())
    lines = engine.logs(result.run_id, "talk")
    warnings = [x.message for x in lines if x.level == "WARNING"]
    assert len(warnings) == 2 * len(FORMS)
    assert all(message.endswith(": ***") for message in warnings), warnings
    text = json.dumps([x.message for x in lines]) + json.dumps(result.to_dict())
    for name, form in FORMS.items():
        assert form not in text, name
    stored = store_bytes(engine, store_url)
    assert b"starting attempt 1" in stored  # the logs are there, redacted
    for name, form in FORMS.items():
        assert form.encode() not in stored, f"{name} form found in the database"


def test_unknown_run_logs_raise(engine: flowforge.Engine) -> None:
    with pytest.raises(flowforge.errors.NotFoundError):
        engine.logs("run_nope")


def spend_then_fail(ctx: Any) -> None:
    ctx.annotate("usage", {"total_tokens": 10 * ctx.attempt})
    raise RuntimeError("no luck")


def test_annotations_of_failed_attempts_are_kept_too(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "spend",
            "blocks": [
                {
                    "id": "spend",
                    "type": "python",
                    "function": f"{__name__}:spend_then_fail",
                    "retry": {"max_attempts": 2, "initial_interval": "10ms"},
                }
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "failed"
    noted = [
        (e.type, e.data.get("annotations"))
        for e in engine.events(result.run_id)
        if e.type in ("block.retrying", "block.failed")
    ]
    assert noted == [
        ("block.retrying", {"usage": {"total_tokens": 10}}),
        ("block.failed", {"usage": {"total_tokens": 20}}),
    ]
