"""The ``wait`` (durable timer) and ``fail`` block types (SPEC 2.3)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from integration_kit import types_of

import flowforge


def test_wait_block_waits_for_its_duration_then_completes(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "timer",
            "blocks": [
                {"id": "pause", "type": "wait", "duration": "300ms"},
                {"id": "after", "type": "transform", "value": "woke", "depends_on": ["pause"]},
            ],
        }
    )
    started = time.monotonic()
    result = engine.run(wf)
    elapsed = time.monotonic() - started

    assert result.status == "completed"
    assert 0.3 <= elapsed < 2
    assert result.outputs == {"after": "woke"}
    record = engine.get(result.run_id)
    assert (record.block("pause").status, record.block("pause").output) == ("completed", None)
    assert types_of(engine.events(result.run_id), "pause") == [
        "block.started",
        "block.waiting",
        "block.completed",
    ]
    waiting = next(e for e in engine.events(result.run_id) if e.type == "block.waiting")
    completed = next(e for e in engine.events(result.run_id) if e.type == "block.completed")
    assert waiting.created_at is not None and completed.created_at is not None
    assert (completed.created_at - waiting.created_at).total_seconds() >= 0.29


def test_wait_until_an_instant(engine: flowforge.Engine) -> None:
    until = (datetime.now(UTC) + timedelta(milliseconds=300)).isoformat()
    wf = flowforge.Workflow.from_dict(
        {
            "id": "timer-until",
            "blocks": [{"id": "pause", "type": "wait", "until": until}],
        }
    )
    started = time.monotonic()
    result = engine.run(wf)
    assert result.status == "completed"
    assert 0.2 <= time.monotonic() - started < 2


def test_waiting_status_is_visible_while_the_timer_runs(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "timer-status",
            "blocks": [{"id": "pause", "type": "wait", "duration": "300ms"}],
        }
    )
    seen: list[str] = []

    def watch(event: flowforge.Event) -> None:
        if event.type == "block.waiting":
            seen.append(engine.get(event.run_id).block("pause").status)

    engine.subscribe(watch)
    assert engine.run(wf).status == "completed"
    assert seen == ["waiting"]


def test_fail_block_fails_with_its_rendered_message(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "failing",
            "parameters": {"who": {"type": "string", "default": "nobody"}},
            "blocks": [
                {"id": "count", "type": "transform", "value": 3},
                {
                    "id": "stop",
                    "type": "fail",
                    "message": "{{ params.who }} found {{ blocks.count.output }} problems",
                    "retry": {"max_attempts": 3, "initial_interval": "10ms"},
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "failed"
    stop = engine.get(result.run_id).block("stop")
    assert stop.error == {"type": "Failed", "message": "nobody found 3 problems"}
    assert stop.attempts == 3  # a fail block is retried like any other: Failed is an error type
    assert result.failure_reason == "block 'stop' failed: Failed: nobody found 3 problems"


def test_a_timer_fires_on_time_while_another_block_retries(store_url: str) -> None:
    """A poll in between (the retry's claim) must not push the timer to the next poll."""
    calls: list[int] = []
    wf = flowforge.Workflow("timely")
    wf.add({"id": "pause", "type": "wait", "duration": "1s"})

    @wf.block(retry=flowforge.Retry(max_attempts=2, initial_interval="300ms", jitter=False))
    def flaky(ctx):  # type: ignore[no-untyped-def]
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        return "ok"

    with flowforge.Engine(store_url) as engine:
        result = engine.run(wf)
    waited = result.block("pause")
    assert result.status == "completed" and calls == [1, 2]
    assert waited.started_at is not None and waited.finished_at is not None
    took = (waited.finished_at - waited.started_at).total_seconds()
    assert 0.95 <= took < 1.2, took  # the next poll after the retry would be at 1.3 s
