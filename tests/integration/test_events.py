"""Events: per-run sequence numbers, SPEC names, live delivery to subscribers (SPEC 3, 5)."""

from __future__ import annotations

from integration_kit import types_of

import flowforge

SPEC_EVENTS = {
    "run.queued",
    "run.started",
    "run.paused",
    "run.resumed",
    "run.completed",
    "run.failed",
    "run.canceled",
    "run.terminated",
    "run.timed_out",
    "block.started",
    "block.retrying",
    "block.waiting",
    "block.completed",
    "block.failed",
    "block.skipped",
    "signal.received",
}


def _workflow() -> flowforge.Workflow:
    wf = flowforge.Workflow("eventful")
    calls = []

    @wf.block(retry={"max_attempts": 2, "initial_interval": "10ms"})
    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("once")
        return 1

    wf.add({"id": "nap", "type": "wait", "duration": "50ms", "depends_on": ["flaky"]})
    wf.add({"id": "never", "type": "noop", "if": "false"})
    wf.add(
        {
            "id": "done",
            "type": "transform",
            "value": "{{ blocks.flaky.output }}",
            "depends_on": ["nap"],
        }
    )
    return wf


def test_events_have_gapless_sequence_numbers_and_spec_names(engine: flowforge.Engine) -> None:
    result = engine.run(_workflow())
    events = engine.events(result.run_id)

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.run_id for e in events} == {result.run_id}
    assert set(types_of(events)) <= SPEC_EVENTS
    assert types_of(events)[:2] == ["run.queued", "run.started"]
    assert types_of(events)[-1] == "run.completed"
    assert types_of(events, "flaky") == [
        "block.started",
        "block.retrying",
        "block.started",
        "block.completed",
    ]
    assert types_of(events, "nap") == ["block.started", "block.waiting", "block.completed"]
    assert types_of(events, "never") == ["block.skipped"]
    assert engine.events(result.run_id, after_seq=3) == events[3:]


def test_failed_block_and_run_events(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {"id": "failing", "blocks": [{"id": "stop", "type": "fail", "message": "no"}]}
    )
    result = engine.run(wf)
    events = engine.events(result.run_id)
    assert types_of(events) == [
        "run.queued",
        "run.started",
        "block.started",
        "block.failed",
        "run.failed",
    ]
    assert events[3].data["error"] == {"type": "Failed", "message": "no"}
    assert events[4].data["reason"] == result.failure_reason


def test_each_run_numbers_its_own_events(engine: flowforge.Engine) -> None:
    wf = _workflow()
    first, second = engine.run(wf), engine.run(wf)
    for run in (first, second):
        seqs = [e.seq for e in engine.events(run.run_id)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_subscribers_receive_every_event_live_in_order(engine: flowforge.Engine) -> None:
    received: list[flowforge.Event] = []
    engine.subscribe(received.append)
    seen_by_block: list[str] = []
    wf = flowforge.Workflow("live")

    @wf.block()
    def first() -> int:
        return 1

    @wf.block()
    def second(first: int) -> int:
        # delivered before this block's function runs, not at the end of the run
        seen_by_block.extend(e.type for e in received if e.block_id == "first")
        return first + 1

    result = engine.run(wf)
    assert seen_by_block == ["block.started", "block.completed"]
    stored = engine.events(result.run_id)
    assert [(e.seq, e.type, e.block_id) for e in received] == [
        (e.seq, e.type, e.block_id) for e in stored
    ]
    assert all(hasattr(e, "data") for e in received)


def test_unsubscribed_callback_gets_nothing(engine: flowforge.Engine) -> None:
    received: list[flowforge.Event] = []
    unsubscribe = engine.subscribe(received.append)
    unsubscribe()
    engine.run(_workflow())
    assert received == []


def test_failing_subscriber_does_not_break_the_run(engine: flowforge.Engine) -> None:
    def broken(event: flowforge.Event) -> None:
        raise RuntimeError("observer bug")

    engine.subscribe(broken)
    assert engine.run(_workflow()).status == "completed"
