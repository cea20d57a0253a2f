"""``switch`` (SPEC 2.3): the chosen case's blocks run, the others are skipped."""

from __future__ import annotations

from typing import Any

import pytest

import flowforge


def _switch_workflow(value: str) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "route",
            "parameters": {"kind": {"type": "string", "default": value}},
            "blocks": [
                {
                    "id": "route",
                    "type": "switch",
                    "value": "params.kind",
                    "cases": {"small": ["small"], "big": ["big", "audit"]},
                    "default": ["other"],
                },
                {"id": "small", "type": "transform", "value": "s"},
                {"id": "big", "type": "transform", "value": "b"},
                {"id": "audit", "type": "noop"},
                {"id": "other", "type": "transform", "value": "o"},
                {
                    "id": "join",
                    "type": "transform",
                    "trigger_rule": "none_failed",
                    "depends_on": ["small", "big", "other"],
                    "value": "{{ blocks.route.output }}",
                },
            ],
            "outputs": {"chosen": "{{ blocks.join.output }}"},
        }
    )


@pytest.mark.parametrize(
    ("kind", "ran", "skipped"),
    [
        ("small", {"small"}, {"big", "audit", "other"}),
        ("big", {"big", "audit"}, {"small", "other"}),
        ("huge", {"other"}, {"small", "big", "audit"}),
    ],
)
def test_switch_runs_the_chosen_case_and_skips_the_rest(
    engine: flowforge.Engine, kind: str, ran: set[str], skipped: set[str]
) -> None:
    result = engine.run(_switch_workflow(kind))
    assert result.status == "completed"
    assert result.outputs == {"chosen": kind if kind != "huge" else "default"}
    status = {b.block_id: b.status for b in result.blocks}
    assert {b for b in ran if status[b] == "completed"} == ran
    assert {b for b in skipped if status[b] == "skipped"} == skipped
    reasons = [e.data["reason"] for e in engine.events(result.run_id) if e.type == "block.skipped"]
    assert all(r.startswith("switch 'route' chose") for r in reasons)


def test_case_keys_match_values_as_json(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "typed",
            "blocks": [
                {"id": "n", "type": "transform", "value": 3},
                {
                    "id": "pick",
                    "type": "switch",
                    "value": "blocks.n.output > 2",
                    "cases": {True: ["yes"], False: ["no"]},
                },
                {"id": "yes", "type": "noop"},
                {"id": "no", "type": "noop"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.block("pick").output == "true"
    assert (result.block("yes").status, result.block("no").status) == ("completed", "skipped")


def test_a_switch_whose_value_fails_fails_and_skips_its_blocks(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "broken",
            "blocks": [
                {"id": "pick", "type": "switch", "value": "1 / 0", "cases": {"1": ["one"]}},
                {"id": "one", "type": "noop"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "failed"
    error = result.block("pick").error
    assert error is not None and error["type"] == "TemplateError"
    assert result.block("one").status == "skipped"


@pytest.mark.parametrize(
    ("switch", "message"),
    [
        ({"value": "1", "cases": {"a": ["ghost"]}}, "unknown block 'ghost'"),
        ({"value": "1", "cases": {"a": ["pick"]}}, "a switch cannot choose itself"),
        ({"value": "1", "cases": {"default": ["x"]}}, "'default' is not a case"),
        ({"value": "1 +", "cases": {"a": ["x"]}}, "template syntax error"),
        ({"value": "1", "cases": {}}, "at least one case"),
    ],
)
def test_switch_definition_errors(switch: dict[str, Any], message: str) -> None:
    with pytest.raises(flowforge.DefinitionError) as caught:
        flowforge.Workflow.from_dict(
            {
                "id": "bad",
                "blocks": [{"id": "pick", "type": "switch", **switch}, {"id": "x", "type": "noop"}],
            }
        )
    assert message in str(caught.value)
