"""Run parameters are validated before a run exists, all problems at once (SPEC 2.4)."""

from __future__ import annotations

import pytest

import flowforge

DEFINITION = {
    "id": "params",
    "parameters": {
        "count": {"type": "integer", "required": True},
        "ratio": {"type": "number", "default": 0.5},
        "names": {"type": "array", "items": {"type": "string"}, "default": ["x"]},
        "loud": {"type": "boolean", "default": False},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    },
    "blocks": [{"id": "echo", "type": "transform", "value": "{{ params }}"}],
}


def test_every_parameter_problem_is_reported_at_once_and_no_run_is_created(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow.from_dict(DEFINITION)
    with pytest.raises(flowforge.ParameterError) as caught:
        engine.run(wf, {"ratio": "lots", "names": ["a", 2], "mode": "medium", "colour": "red"})
    problems = {p.location: p.message for p in caught.value.problems}
    assert set(problems) == {
        "params.count",
        "params.ratio",
        "params.names[1]",
        "params.mode",
        "params.colour",
    }
    assert "missing" in problems["params.count"]
    assert "unknown" in problems["params.colour"]
    assert engine.list() == []


def test_defaults_are_applied(engine: flowforge.Engine) -> None:
    result = engine.run(flowforge.Workflow.from_dict(DEFINITION), {"count": 2})
    assert result.status == "completed"
    expected = {"count": 2, "ratio": 0.5, "names": ["x"], "loud": False, "mode": "fast"}
    assert result.outputs == {"echo": expected}
    assert engine.get(result.run_id).parameters == expected


def test_strings_from_the_command_line_are_coerced_where_unambiguous(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow.from_dict(DEFINITION)
    given = {"count": "3", "ratio": "2.5", "names": '["a", "b"]', "loud": "yes", "mode": "slow"}
    result = engine.run(wf, given, from_strings=True)
    assert result.outputs == {
        "echo": {"count": 3, "ratio": 2.5, "names": ["a", "b"], "loud": True, "mode": "slow"}
    }


def test_strings_are_not_coerced_from_the_python_api(engine: flowforge.Engine) -> None:
    with pytest.raises(flowforge.ParameterError) as caught:
        engine.run(flowforge.Workflow.from_dict(DEFINITION), {"count": "3"})
    assert [p.location for p in caught.value.problems] == ["params.count"]


def test_python_api_parameters_reach_blocks(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("typed", parameters={"n": int, "word": str})

    @wf.block()
    def repeat(params: dict[str, object]) -> str:
        return str(params["word"]) * int(params["n"])  # type: ignore[call-overload]

    assert engine.run(wf, {"n": 3, "word": "ab"}).outputs == {"repeat": "ababab"}
    with pytest.raises(flowforge.ParameterError) as caught:
        engine.run(wf, {"n": "three"})
    assert {p.location for p in caught.value.problems} == {"params.n", "params.word"}
