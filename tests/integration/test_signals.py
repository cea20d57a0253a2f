"""``wait_for_signal`` and ``Engine.signal`` (SPEC 2.3): early signals are kept, timeouts fail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from integration_kit import async_wait_until, has_event

import flowforge
from flowforge.errors import InvalidInputError, InvalidStateError


def _approval(**wait: Any) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "approval",
            "blocks": [
                {"id": "ask", "type": "wait_for_signal", "signal": "approved", **wait},
                {"id": "after", "type": "transform", "value": "{{ blocks.ask.output.by }}"},
            ],
        }
    )


async def test_a_waiting_block_takes_the_signal_and_the_run_goes_on(
    engine: flowforge.Engine,
) -> None:
    wf = _approval(schema={"type": "object", "required": ["by"]})
    run = asyncio.create_task(engine.run_async(wf))
    await async_wait_until(lambda: engine.list() and engine.list()[0].status == "running")
    run_id = engine.list()[0].run_id
    await async_wait_until(lambda: engine.get(run_id).block("ask").status == "waiting")
    assert engine.get(run_id).block("after").status == "pending"
    engine.signal(run_id, "approved", {"by": "ada"})
    result = await asyncio.wait_for(run, 10)
    assert result.status == "completed"
    assert result.outputs == {"after": "ada"}
    received = [e for e in engine.events(run_id) if e.type == "signal.received"]
    assert [e.data for e in received] == [
        {"name": "approved", "payload": {"by": "ada"}, "delivered_to": "ask"}
    ]


def test_a_signal_sent_before_the_block_waits_is_kept_for_it(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "early",
            "blocks": [
                {"id": "first", "type": "wait", "duration": "200ms"},
                {
                    "id": "ask",
                    "type": "wait_for_signal",
                    "signal": "go",
                    "depends_on": ["first"],
                },
            ],
        }
    )
    queued = engine.start(wf)
    engine.signal(queued.run_id, "go", [1, 2])
    engine.signal(queued.run_id, "go", [3])  # kept too, for a later waiter
    result = engine.resume(queued.run_id)
    assert result.status == "completed"
    assert result.outputs == {"ask": [1, 2]}
    completed = next(
        e
        for e in engine.events(queued.run_id)
        if e.type == "block.completed" and e.block_id == "ask"
    )
    assert completed.data["signal"] == "go"


def test_signals_are_taken_oldest_first_by_each_iteration(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "votes",
            "blocks": [
                {
                    "id": "collect",
                    "type": "for_each",
                    "items": [1, 2, 3],
                    "do": {"type": "wait_for_signal", "signal": "vote"},
                }
            ],
        }
    )
    queued = engine.start(wf)
    for payload in ("a", "b", "c"):
        engine.signal(queued.run_id, "vote", payload)
    result = engine.resume(queued.run_id)
    assert result.outputs == {"collect": ["a", "b", "c"]}


def test_the_wait_times_out_with_timeout(engine: flowforge.Engine) -> None:
    result = engine.run(_approval(timeout="300ms"))
    assert result.status == "failed"
    assert result.block("ask").error == {
        "type": "Timeout",
        "message": "no signal 'approved' arrived within 0.3s",
    }
    assert result.block("after").status == "skipped"


def test_a_waiting_block_holds_no_slot(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "slots",
            "settings": {"max_concurrency": 1},
            "blocks": [
                {"id": "ask", "type": "wait_for_signal", "signal": "go", "timeout": "1s"},
                {"id": "a", "type": "transform", "value": 1},
                {"id": "b", "type": "transform", "value": 2},
            ],
        }
    )
    result = engine.run(wf)
    # a and b ran while ask waited, with the run's one slot; then ask timed out
    assert (result.block("a").status, result.block("b").status) == ("completed", "completed")
    assert result.block("ask").status == "failed"
    assert has_event(engine, result.run_id, "block.waiting", "ask")
    order = [(e.type, e.block_id) for e in engine.events(result.run_id)]
    timed_out = order.index(("block.failed", "ask"))
    assert order.index(("block.completed", "a")) < timed_out
    assert order.index(("block.completed", "b")) < timed_out


def test_bad_signals_are_refused_and_change_nothing(engine: flowforge.Engine) -> None:
    queued = engine.start(_approval(schema={"type": "object", "required": ["by"]}))
    seq = len(engine.events(queued.run_id))
    with pytest.raises(InvalidInputError, match="no wait_for_signal block for signal 'aproved'"):
        engine.signal(queued.run_id, "aproved", {"by": "x"})
    with pytest.raises(InvalidInputError, match="'by' is a required property"):
        engine.signal(queued.run_id, "approved", {"who": "x"})
    assert len(engine.events(queued.run_id)) == seq
    engine.cancel(queued.run_id)
    with pytest.raises(InvalidStateError, match="it is canceled"):
        engine.signal(queued.run_id, "approved", {"by": "x"})
    with pytest.raises(flowforge.errors.NotFoundError):
        engine.signal("run_nope", "approved", {})


def test_an_invalid_schema_is_a_definition_error() -> None:
    with pytest.raises(flowforge.DefinitionError, match="not a valid JSON Schema"):
        _approval(schema={"type": "nonsense"})
