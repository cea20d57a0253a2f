"""Run outputs (SPEC 3) and templates: native values, implicit dependencies, scope (SPEC 2.2)."""

from __future__ import annotations

import flowforge


def test_declared_outputs_are_rendered_templates(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "declared",
            "parameters": {"factor": {"type": "integer", "default": 3}},
            "blocks": [
                {"id": "numbers", "type": "transform", "value": [1, 2, 3]},
                {
                    "id": "scaled",
                    "type": "transform",
                    "value": "{{ blocks.numbers.output | map('int') | sum * params.factor }}",
                },
            ],
            "outputs": {
                "total": "{{ blocks.scaled.output }}",
                "count": "{{ blocks.numbers.output | length }}",
                "summary": "{{ blocks.numbers.output | length }} numbers,"
                " total {{ blocks.scaled.output }}",
            },
        }
    )
    result = engine.run(wf)
    assert result.status == "completed"
    assert result.outputs == {"total": 18, "count": 3, "summary": "3 numbers, total 18"}
    assert engine.get(result.run_id).outputs == result.outputs


def test_without_declared_outputs_the_leaves_outputs_are_keyed_by_block_id(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "leaves",
            "blocks": [
                {"id": "root", "type": "transform", "value": {"a": 1}},
                {"id": "left", "type": "transform", "value": "{{ blocks.root.output.a + 1 }}"},
                {"id": "right", "type": "transform", "value": ["{{ blocks.root.output.a }}", "x"]},
                {"id": "alone", "type": "noop"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.outputs == {"left": 2, "right": [1, "x"], "alone": None}
    assert engine.get(result.run_id).outputs == result.outputs


def test_single_expression_templates_give_native_values(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "native",
            "parameters": {"code": {"type": "string", "default": "007"}},
            "blocks": [
                {"id": "a", "type": "transform", "value": [1, 2, 3]},
                {
                    "id": "b",
                    "type": "transform",
                    "value": {
                        "list": "{{ blocks.a.output }}",
                        "number": "{{ blocks.a.output[0] + 0.5 }}",
                        "dict": "{{ {'k': blocks.a.output[1]} }}",
                        "bool": "{{ blocks.a.output | length > 2 }}",
                        "string_stays_string": "{{ params.code }}",
                        "text": "items: {{ blocks.a.output }}",
                    },
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.outputs == {
        "b": {
            "list": [1, 2, 3],
            "number": 1.5,
            "dict": {"k": 2},
            "bool": True,
            "string_stays_string": "007",
            "text": "items: [1, 2, 3]",
        }
    }


def test_block_references_in_templates_are_dependencies(engine: flowforge.Engine) -> None:
    # 'consumer' is declared first and lists no depends_on: the reference orders it
    wf = flowforge.Workflow.from_dict(
        {
            "id": "implicit",
            "blocks": [
                {
                    "id": "consumer",
                    "type": "transform",
                    "value": "{{ blocks.producer.output * 2 }}",
                },
                {"id": "producer", "type": "transform", "value": 21},
            ],
        }
    )
    result = engine.run(wf)
    assert result.outputs == {"consumer": 42}
    started = [e.block_id for e in engine.events(result.run_id) if e.type == "block.started"]
    assert started == ["producer", "consumer"]


def test_run_metadata_is_in_scope(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "meta",
            "blocks": [
                {
                    "id": "me",
                    "type": "transform",
                    "value": {
                        "id": "{{ run.id }}",
                        "workflow": "{{ run.workflow_id }}",
                        "version": "{{ run.workflow_version }}",
                        "started": "{{ run.started_at is not none }}",
                    },
                }
            ],
        }
    )
    result = engine.run(wf)
    assert result.outputs == {
        "me": {
            "id": result.run_id,
            "workflow": "meta",
            "version": 1,
            "started": True,
        }
    }
