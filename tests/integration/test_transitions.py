"""Every block status change a run records is one the transition table allows."""

from __future__ import annotations

import flowforge
from flowforge.definition.workflow import Workflow
from flowforge.engine.states import BLOCK_TRANSITIONS, BlockStatus

_STATUS_OF = {
    "block.started": BlockStatus.RUNNING,
    "block.retrying": BlockStatus.RETRYING,
    "block.waiting": BlockStatus.WAITING,
    "block.completed": BlockStatus.COMPLETED,
    "block.failed": BlockStatus.FAILED,
    "block.skipped": BlockStatus.SKIPPED,
    "block.canceled": BlockStatus.CANCELED,
}

WORKFLOW = {
    "id": "transitions",
    "settings": {"fail_fast": True},
    "blocks": [
        {"id": "pause", "type": "wait", "duration": "50ms"},
        {
            "id": "flaky",
            "type": "fail",
            "message": "no",
            "retry": {"max_attempts": 2, "initial_interval": "10ms"},
            "depends_on": ["pause"],
        },
        {"id": "long", "type": "wait", "duration": "5s"},
        {"id": "after", "type": "noop", "depends_on": ["flaky"]},
        {"id": "handler", "type": "noop", "depends_on": ["flaky"], "trigger_rule": "one_failed"},
        {"id": "skipped", "type": "noop", "if": "false"},
    ],
}


def test_recorded_block_transitions_are_allowed(store_url: str) -> None:
    with flowforge.Engine(store_url) as engine:
        result = engine.run(Workflow.from_dict(WORKFLOW))
        events = engine.events(result.run_id)
    assert result.status == "failed"
    seen: dict[str, BlockStatus] = {}
    moves = set()
    for event in events:
        new = _STATUS_OF.get(event.type)
        if new is None or event.block_id is None:
            continue
        old = seen.get(event.block_id, BlockStatus.PENDING)
        assert new in BLOCK_TRANSITIONS[old], f"{event.block_id}: {old} -> {new}"
        seen[event.block_id] = new
        moves.add((old, new))
    # the run went through retries, waits, skips, failures and cancellations
    assert {
        BlockStatus.RETRYING,
        BlockStatus.WAITING,
        BlockStatus.SKIPPED,
        BlockStatus.FAILED,
        BlockStatus.CANCELED,
        BlockStatus.COMPLETED,
    } <= {new for _, new in moves}
