"""``for_each`` and ``loop`` (SPEC 2.3): iterations are blocks of the run, in frames."""

from __future__ import annotations

from typing import Any

import control_flow_functions as fns
import pytest
from integration_kit import types_of

import flowforge


def _run(engine: flowforge.Engine, blocks: list[dict[str, Any]], **header: Any) -> Any:
    wf = flowforge.Workflow.from_dict({"id": "cf", "blocks": blocks, **header})
    return engine.run(wf)


def test_for_each_single_block_outputs_in_item_order(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": [3, 1, 2],
                "concurrency": 3,
                "do": {"type": "transform", "value": "{{ item * 10 + index }}"},
            }
        ],
    )
    assert result.status == "completed"
    assert result.outputs == {"each": [30, 11, 22]}
    events = engine.events(result.run_id)
    assert types_of(events, "each") == [
        "block.started",
        "iteration.started",
        "iteration.started",
        "iteration.started",
        "block.completed",
    ]
    completed = [e.block_id for e in events if e.type == "block.completed"]
    # each item's iteration completed once, and the for_each only after all of them
    assert sorted(completed[:3]) == ["each[0]", "each[1]", "each[2]"]
    assert completed[3:] == ["each"]
    started = next(e for e in events if e.type == "block.started" and e.block_id == "each")
    assert started.data["items"] == [3, 1, 2]  # evaluated once, kept in the log


def test_for_each_sub_graph_body_gives_a_mapping_per_iteration(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {"id": "base", "type": "transform", "value": 100},
            {
                "id": "each",
                "type": "for_each",
                "items": "{{ params.xs }}",
                "loop_variable": "x",
                "do": [
                    {"id": "plus", "type": "transform", "value": "{{ x + blocks.base.output }}"},
                    {
                        "id": "label",
                        "type": "transform",
                        "value": "#{{ index }}:{{ blocks.plus.output }}",
                    },
                ],
            },
        ],
        parameters={"xs": {"type": "array", "default": [1, 2]}},
    )
    assert result.status == "completed"
    assert result.outputs == {
        "each": [{"plus": 101, "label": "#0:101"}, {"plus": 102, "label": "#1:102"}]
    }
    # the outer block the body reads is a dependency of the for_each
    events = engine.events(result.run_id)
    order = [(e.type, e.block_id) for e in events]
    assert order.index(("block.completed", "base")) < order.index(("block.started", "each"))


def test_concurrency_bounds_overlapping_iterations(engine: flowforge.Engine) -> None:
    fns.reset()
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": [1, 2, 3, 4, 5, 6],
                "concurrency": 2,
                "do": {
                    "type": "python",
                    "function": "control_flow_functions:slow_square",
                    "args": {"x": "{{ item }}"},
                },
            }
        ],
    )
    assert result.outputs == {"each": [1, 4, 9, 16, 25, 36]}
    assert fns.ACTIVE["peak"] == 2  # two at once, never more


def test_items_that_are_not_a_list_fail_with_not_iterable(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [{"id": "each", "type": "for_each", "items": "{{ 5 }}", "do": {"type": "noop"}}],
    )
    assert result.status == "failed"
    assert result.block("each").error == {
        "type": "NotIterable",
        "message": "'items' must be a list, got int",
    }


def test_empty_items_complete_with_an_empty_list(engine: flowforge.Engine) -> None:
    result = _run(engine, [{"id": "each", "type": "for_each", "items": [], "do": {"type": "noop"}}])
    assert (result.status, result.outputs) == ("completed", {"each": []})


def test_a_failed_iteration_fails_the_for_each_and_the_run(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": [1, 2, 3],
                "do": {
                    "type": "python",
                    "function": "control_flow_functions:fail_on",
                    "args": {"x": "{{ item }}", "bad": 2},
                },
            },
            {"id": "after", "type": "noop", "depends_on": ["each"]},
        ],
    )
    assert result.status == "failed"
    error = result.block("each").error
    assert error is not None and error["type"] == "IterationFailed"
    assert "iteration 1 failed: ValueError: item 2 is bad" in error["message"]
    assert result.block("after").status == "skipped"
    assert result.failure_reason is not None and "'each'" in result.failure_reason
    # iterations after the failed one do not start (concurrency 1)
    assert not any(e.block_id == "each[2]" for e in engine.events(result.run_id))


def test_continue_on_failure_gives_null_for_failed_iterations(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": [1, 2, 3],
                "continue_on_failure": True,
                "do": {
                    "type": "python",
                    "function": "control_flow_functions:fail_on",
                    "args": {"x": "{{ item }}", "bad": 2},
                },
            }
        ],
    )
    assert result.status == "completed"
    assert result.outputs == {"each": [1, None, 3]}


def test_container_retry_is_the_default_of_its_body(engine: flowforge.Engine) -> None:
    fns.reset()
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": [1, 2],
                "retry": {"max_attempts": 2, "initial_interval": "10ms"},
                "do": {
                    "type": "python",
                    "function": "control_flow_functions:flaky",
                    "args": {"x": "{{ item }}"},
                },
            }
        ],
    )
    assert result.outputs == {"each": [101, 102]}
    assert fns.ATTEMPTS == {"each[0]": 2, "each[1]": 2}


def test_each_iteration_has_its_own_idempotency_key(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "each",
                "type": "for_each",
                "items": ["a", "b"],
                "do": {"type": "python", "function": "control_flow_functions:key_of"},
            }
        ],
    )
    assert result.outputs == {"each": [f"{result.run_id}:each[0]", f"{result.run_id}:each[1]"]}


def test_nested_for_each_sees_both_loop_variables(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "rows",
                "type": "for_each",
                "items": [1, 2],
                "loop_variable": "row",
                "do": {
                    "type": "for_each",
                    "items": ["a", "b"],
                    "loop_variable": "col",
                    "do": {"type": "transform", "value": "{{ col }}{{ row }}"},
                },
            }
        ],
    )
    assert result.outputs == {"rows": [["a1", "b1"], ["a2", "b2"]]}


def test_loop_runs_until_its_condition_holds(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "grow",
                "type": "loop",
                "max_iterations": 10,
                "until": "output >= 8",
                "do": {"type": "transform", "value": "{{ 2 ** iteration }}"},
            },
            {"id": "after", "type": "transform", "value": "{{ blocks.grow.output | last }}"},
        ],
    )
    assert result.status == "completed"
    assert result.block("grow").output == [1, 2, 4, 8]
    assert result.outputs == {"after": 8}


def test_loop_until_sees_the_body_blocks_of_the_last_iteration(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "poll",
                "type": "loop",
                "max_iterations": 5,
                "until": "blocks.check.output == 'done'",
                "do": [
                    {"id": "count", "type": "transform", "value": "{{ iteration }}"},
                    {
                        "id": "check",
                        "type": "transform",
                        "value": "{{ 'done' if blocks.count.output == 2 else 'wait' }}",
                    },
                ],
            }
        ],
    )
    assert result.outputs == {
        "poll": [
            {"count": 0, "check": "wait"},
            {"count": 1, "check": "wait"},
            {"count": 2, "check": "done"},
        ]
    }


def test_loop_that_never_ends_fails_at_max_iterations(engine: flowforge.Engine) -> None:
    result = _run(
        engine,
        [
            {
                "id": "spin",
                "type": "loop",
                "max_iterations": 3,
                "until": "false",
                "do": {"type": "noop"},
            }
        ],
    )
    assert result.status == "failed"
    assert result.block("spin").error == {
        "type": "MaxIterationsReached",
        "message": "'until' was still false after 3 iterations",
    }
    assert sum(1 for e in engine.events(result.run_id) if e.type == "iteration.started") == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"type": "for_each", "items": [1], "do": []},
            "must be a block or a non-empty list of blocks",
        ),
        (
            {
                "type": "for_each",
                "items": [1],
                "do": [{"id": "a", "type": "noop", "depends_on": ["b"]}],
            },
            "'b' is not a block of this 'do'",
        ),
        (
            {
                "type": "for_each",
                "items": [1],
                "do": [
                    {"id": "a", "type": "noop", "depends_on": ["b"]},
                    {"id": "b", "type": "noop", "depends_on": ["a"]},
                ],
            },
            "cycle",
        ),
        (
            {"type": "loop", "until": "true", "do": {"type": "noop"}},
            "required field is missing",
        ),
        (
            {"type": "for_each", "items": [1], "do": {"type": "nope"}},
            "unknown block type 'nope'",
        ),
    ],
)
def test_body_errors_are_reported_with_their_location(body: dict[str, Any], message: str) -> None:
    with pytest.raises(flowforge.DefinitionError) as caught:
        flowforge.Workflow.from_dict({"id": "bad", "blocks": [{"id": "c", **body}]})
    assert any(message in str(problem) for problem in caught.value.problems), caught.value
    assert all(str(p.location).startswith("blocks[0]") for p in caught.value.problems)


def test_retry_of_a_failed_for_each_reruns_only_what_failed(engine: flowforge.Engine) -> None:
    fns.BAD.clear()
    fns.BAD.add(2)
    fns.CALLS.clear()
    wf = flowforge.Workflow.from_dict(
        {
            "id": "retry-each",
            "blocks": [
                {
                    "id": "each",
                    "type": "for_each",
                    "items": [1, 2, 3],
                    "do": {
                        "type": "python",
                        "function": "control_flow_functions:fail_if_bad",
                        "args": {"x": "{{ item }}"},
                    },
                }
            ],
        }
    )
    failed = engine.run(wf)
    assert failed.status == "failed"
    assert fns.CALLS == {1: 1, 2: 1}
    fns.BAD.clear()
    engine.retry(failed.run_id)
    result = engine.resume(failed.run_id)
    assert result.status == "completed"
    assert result.outputs == {"each": [1, 2, 3]}
    assert fns.CALLS == {1: 1, 2: 2, 3: 1}  # the finished iteration kept its output
