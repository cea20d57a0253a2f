"""``workflow`` blocks (SPEC 2.3): child runs linked to their parent; cancel cascades."""

from __future__ import annotations

import asyncio

from integration_kit import async_wait_until

import flowforge


def _child(engine: flowforge.Engine, blocks: list[dict[str, object]] | None = None) -> None:
    engine.apply(
        flowforge.Workflow.from_dict(
            {
                "id": "square",
                "parameters": {"n": {"type": "integer", "required": True}},
                "blocks": blocks
                or [{"id": "sq", "type": "transform", "value": "{{ params.n * params.n }}"}],
                "outputs": {"square": "{{ blocks.sq.output }}"},
            }
        )
    )


def _parent(**call: object) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "parent",
            "blocks": [
                {
                    "id": "call",
                    "type": "workflow",
                    "workflow": "square",
                    "parameters": {"n": 7},
                    **call,
                }
            ],
        }
    )


def test_the_block_outputs_the_child_runs_outputs(engine: flowforge.Engine) -> None:
    _child(engine)
    result = engine.run(_parent())
    assert result.status == "completed"
    assert result.outputs == {"call": {"square": 49}}
    started = next(e for e in engine.events(result.run_id) if e.block_id == "call")
    child_id = started.data["child_run_id"]
    child = engine.get(child_id)
    assert (child.workflow_id, child.status, child.outputs) == (
        "square",
        "completed",
        {"square": 49},
    )
    queued = engine.events(child_id)[0]
    assert queued.data["parent_run_id"] == result.run_id
    assert queued.data["parent_block_id"] == "call"


def test_a_pinned_version_runs_as_stored(engine: flowforge.Engine) -> None:
    _child(engine)  # version 1: n * n
    _child(engine, [{"id": "sq", "type": "transform", "value": "{{ params.n + 1 }}"}])  # v2
    assert engine.run(_parent()).outputs == {"call": {"square": 8}}
    assert engine.run(_parent(version=1)).outputs == {"call": {"square": 49}}


def test_a_failed_child_fails_the_block(engine: flowforge.Engine) -> None:
    _child(engine, [{"id": "sq", "type": "fail", "message": "nope"}])
    result = engine.run(_parent())
    assert result.status == "failed"
    error = result.block("call").error
    assert error is not None and error["type"] == "ChildRunFailed"
    assert "ended failed" in error["message"] and "nope" in error["message"]


def test_an_unknown_workflow_or_bad_parameters_fail_the_block(engine: flowforge.Engine) -> None:
    missing = engine.run(_parent(workflow="nothere"))
    assert missing.block("call").error == {
        "type": "ChildRunError",
        "message": "workflow nothere does not exist",
    }
    _child(engine)
    bad = engine.run(_parent(parameters={"n": "seven"}))
    error = bad.block("call").error
    assert error is not None and error["type"] == "ChildRunError"
    assert "n" in error["message"]


async def test_canceling_the_parent_cancels_the_child(engine: flowforge.Engine) -> None:
    _child(
        engine,
        [
            {"id": "hold", "type": "wait_for_signal", "signal": "never"},
            {"id": "sq", "type": "transform", "value": 1, "depends_on": ["hold"]},
        ],
    )
    run = asyncio.create_task(engine.run_async(_parent()))
    await async_wait_until(
        lambda: any(r.workflow_id == "square" and r.status == "running" for r in engine.list()),
        what="the child run to start",
    )
    parent = next(r for r in engine.list() if r.workflow_id == "parent")
    child = next(r for r in engine.list() if r.workflow_id == "square")
    engine.cancel(parent.run_id)
    result = await asyncio.wait_for(run, 10)
    assert result.status == "canceled"
    assert engine.get(child.run_id).status == "canceled"
    assert engine.get(child.run_id).failure_reason == "its parent run was stopped"


def test_children_of_a_for_each(engine: flowforge.Engine) -> None:
    _child(engine)
    wf = flowforge.Workflow.from_dict(
        {
            "id": "fan",
            "blocks": [
                {
                    "id": "each",
                    "type": "for_each",
                    "items": [2, 3, 4],
                    "concurrency": 3,
                    "do": {
                        "type": "workflow",
                        "workflow": "square",
                        "parameters": {"n": "{{ item }}"},
                    },
                },
                {
                    "id": "total",
                    "type": "transform",
                    "value": "{{ blocks.each.output | map(attribute='square') | sum }}",
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.outputs == {"total": 29}
    assert len([r for r in engine.list() if r.workflow_id == "square"]) == 3
