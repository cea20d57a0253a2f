"""Trigger rules, ``if`` and skip propagation (SPEC 2.1)."""

from __future__ import annotations

from typing import Any

import pytest

import flowforge

RULES = ("all_success", "all_done", "none_failed", "one_success", "one_failed", "all_failed")

UPSTREAM: dict[str, dict[str, Any]] = {
    "ok": {"type": "noop"},
    "ok2": {"type": "transform", "value": 2},
    "bad": {"type": "fail", "message": "bad"},
    "bad2": {"type": "fail", "message": "bad2"},
    "skip": {"type": "noop", "if": "false"},
}

# upstream blocks -> the rules under which a block depending on them runs (others: skipped)
CASES: dict[tuple[str, ...], set[str]] = {
    ("ok", "ok2"): {"all_success", "all_done", "none_failed", "one_success"},
    ("ok", "bad"): {"all_done", "one_success", "one_failed"},
    ("bad", "bad2"): {"all_done", "one_failed", "all_failed"},
    ("ok", "skip"): {"all_done", "none_failed", "one_success"},
    ("skip",): {"all_done", "none_failed"},
    ("bad", "skip"): {"all_done", "one_failed"},
}


def _workflow(upstream: tuple[str, ...]) -> flowforge.Workflow:
    blocks = [{"id": name, **UPSTREAM[name]} for name in upstream]
    blocks += [
        {"id": f"on_{rule}", "type": "noop", "depends_on": list(upstream), "trigger_rule": rule}
        for rule in RULES
    ]
    return flowforge.Workflow.from_dict({"id": "rules", "blocks": blocks})


@pytest.mark.parametrize("upstream", list(CASES), ids=lambda u: "+".join(u))
def test_each_trigger_rule_decides_from_the_dependencies_outcomes(
    engine: flowforge.Engine, upstream: tuple[str, ...]
) -> None:
    result = engine.run(_workflow(upstream))
    statuses = {rule: result.block(f"on_{rule}").status for rule in RULES}
    expected = {rule: "completed" if rule in CASES[upstream] else "skipped" for rule in RULES}
    assert statuses == expected
    stored = engine.get(result.run_id)
    assert {rule: stored.block(f"on_{rule}").status for rule in RULES} == expected
    any_failed = any(name.startswith("bad") for name in upstream)
    assert result.status == ("failed" if any_failed else "completed")


def test_false_if_skips_the_block_and_all_success_dependents_down_the_chain(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "skips",
            "blocks": [
                {"id": "gate", "type": "noop", "if": "1 > 2"},
                {"id": "child", "type": "noop", "depends_on": ["gate"]},
                {"id": "grandchild", "type": "noop", "depends_on": ["child"]},
                {
                    "id": "cleanup",
                    "type": "noop",
                    "depends_on": ["grandchild"],
                    "trigger_rule": "all_done",
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "completed"
    assert [result.block(b).status for b in ("gate", "child", "grandchild", "cleanup")] == [
        "skipped",
        "skipped",
        "skipped",
        "completed",
    ]
    skipped = [e.block_id for e in engine.events(result.run_id) if e.type == "block.skipped"]
    assert skipped == ["gate", "child", "grandchild"]


def test_if_reads_upstream_outputs_and_params(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "conditions",
            "parameters": {"threshold": {"type": "number", "default": 10}},
            "blocks": [
                {"id": "total", "type": "transform", "value": 25},
                # no depends_on: the reference to blocks.total makes it a dependency
                {"id": "big", "type": "noop", "if": "blocks.total.output > params.threshold"},
                {"id": "small", "type": "noop", "if": "blocks.total.output <= params.threshold"},
            ],
        }
    )
    result = engine.run(wf)
    assert (result.block("big").status, result.block("small").status) == ("completed", "skipped")
    result = engine.run(wf, {"threshold": 100})
    assert (result.block("big").status, result.block("small").status) == ("skipped", "completed")


def test_if_that_cannot_be_evaluated_fails_the_block(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "broken-if",
            "blocks": [
                {"id": "data", "type": "transform", "value": {"a": 1}},
                {"id": "check", "type": "noop", "if": "blocks.data.output.missing.deeper > 1"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "failed"
    assert result.block("check").status == "failed"
    assert result.block("check").error["type"] == "TemplateError"  # type: ignore[index]
