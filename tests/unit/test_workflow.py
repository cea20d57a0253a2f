from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowforge.definition import (
    CompiledWorkflow,
    ParameterSpec,
    Retry,
    RetryPolicy,
    Settings,
    Workflow,
    load,
)
from flowforge.definition.builtin_specs import NoopSpec
from flowforge.errors import DefinitionError

PIPELINE = """\
id: order-report
title: Order report
parameters:
  order_ids: {type: array, items: {type: integer}, required: true}
  threshold: {type: number, default: 100}
settings:
  timeout: 600
  retry: {max_attempts: 2, initial_interval: 0.5}
blocks:
  - id: fetch
    type: transform
    value: "{{ params.order_ids }}"
    timeout: 90s
  - id: total
    type: python
    function: examples.orders:total
    args: {orders: "{{ blocks.fetch.output }}"}
  - id: notify
    type: transform
    if: "blocks.total.output > params.threshold"
    value: "total={{ blocks.total.output }}"
  - id: audit
    type: noop
    depends_on: [fetch]
    trigger_rule: all_done
outputs:
  total: "{{ blocks.total.output }}"
"""


def build_totals() -> Workflow:
    wf = Workflow("totals", parameters={"n": int})

    @wf.block(retry=Retry(max_attempts=3))
    def numbers(params: dict[str, Any]) -> list[int]:
        return list(range(params["n"]))

    @wf.block()
    async def total(numbers: list[int], ctx: Any) -> int:
        return sum(numbers)

    return wf


def test_python_api_builds_python_blocks_with_implicit_dependencies() -> None:
    wf = build_totals()
    numbers, total = wf.spec.blocks
    assert numbers.type == "python" and numbers.args == {"params": "{{ params }}"}  # type: ignore[attr-defined]
    assert total.args == {"numbers": "{{ blocks.numbers.output }}"}  # type: ignore[attr-defined]
    assert total.function.endswith(":build_totals.<locals>.total")  # type: ignore[attr-defined]
    assert numbers.retry == RetryPolicy(max_attempts=3)
    compiled = wf.compile()
    assert compiled.blocks["total"].dependencies == ("numbers",)
    assert compiled.roots == ("numbers",) and compiled.leaves == ("total",)
    assert set(compiled.callables) == {"numbers", "total"}
    assert compiled.context_blocks == frozenset({"total"})
    assert compiled.callables["numbers"]({"n": 3}) == [0, 1, 2]


def test_block_decorator_without_parentheses_returns_the_function() -> None:
    wf = Workflow("bare")

    def first() -> int:
        return 1

    assert wf.block(first) is first
    assert wf.spec.blocks[0].id == "first"


def test_block_decorator_options() -> None:
    wf = Workflow("opts", parameters={"limit": ParameterSpec(type="integer", default=3)})

    @wf.block(id="start")
    def begin() -> None:
        return None

    @wf.block(
        depends_on=["start"],
        timeout="1m",
        if_="params.limit > 1",
        trigger_rule="all_done",
        continue_on_failure=True,
        description="second",
    )
    def after() -> None:
        return None

    block = wf.spec.blocks[1]
    assert (
        block.depends_on == ("start",) and block.timeout == 60 and block.if_ == "params.limit > 1"
    )
    assert block.trigger_rule == "all_done" and block.continue_on_failure
    assert wf.to_dict()["blocks"][1]["if"] == "params.limit > 1"


def test_unknown_function_parameter_is_a_definition_error() -> None:
    wf = Workflow("bad")
    with pytest.raises(DefinitionError, match=r"parameter 'later' of .*is not a block declared"):

        @wf.block()
        def first(later: int) -> int:
            return later


def test_python_types_map_to_parameter_types() -> None:
    wf = Workflow(
        "types", parameters={"a": int, "b": float, "c": str, "d": bool, "e": list, "f": dict}
    )
    wf.add({"id": "x", "type": "noop"})
    assert {k: p.type for k, p in wf.spec.parameters.items()} == {
        "a": "integer",
        "b": "number",
        "c": "string",
        "d": "boolean",
        "e": "array",
        "f": "object",
    }
    assert all(p.required for p in wf.spec.parameters.values())


def test_add_accepts_models_and_dicts() -> None:
    wf = Workflow("added", settings=Settings(max_concurrency=2))
    wf.add(NoopSpec(id="a"))
    wf.add({"id": "b", "type": "wait", "duration": "5s", "depends_on": ["a"]})
    assert [b.id for b in wf.spec.blocks] == ["a", "b"]
    assert wf.compile().blocks["b"].dependencies == ("a",)


def test_invalid_python_workflow_raises_on_spec() -> None:
    wf = Workflow("broken")
    wf.add({"id": "a", "type": "noop", "depends_on": ["ghost"]})
    with pytest.raises(DefinitionError, match="unknown block 'ghost'"):
        _ = wf.spec


def test_to_dict_omits_defaults_and_writes_canonical_durations() -> None:
    wf = Workflow.from_text(PIPELINE)
    data = wf.to_dict()
    assert data["settings"] == {
        "timeout": "10m",
        "retry": {"max_attempts": 2, "initial_interval": "500ms"},
    }
    assert data["blocks"][0] == {
        "id": "fetch",
        "type": "transform",
        "timeout": "1m30s",
        "value": "{{ params.order_ids }}",
    }
    assert data["blocks"][2]["if"] == "blocks.total.output > params.threshold"
    assert data["parameters"]["threshold"] == {"type": "number", "default": 100}


def test_round_trips_through_dict_yaml_and_json() -> None:
    wf = Workflow.from_text(PIPELINE)
    assert Workflow.from_dict(wf.to_dict()).to_dict() == wf.to_dict()
    assert Workflow.from_text(wf.to_yaml()).to_dict() == wf.to_dict()
    assert Workflow.from_dict(json.loads(wf.to_json())).to_dict() == wf.to_dict()
    built = build_totals()
    assert Workflow.from_dict(built.to_dict()).to_dict() == built.to_dict()


def test_to_yaml_is_readable_yaml_in_definition_order() -> None:
    text = Workflow.from_text(PIPELINE).to_yaml()
    assert text.startswith("id: order-report\ntitle: Order report\nparameters:")
    assert list(yaml.safe_load(text)) == [
        "id",
        "title",
        "parameters",
        "settings",
        "blocks",
        "outputs",
    ]


def test_digest_is_stable_and_follows_the_content() -> None:
    first = Workflow.from_text(PIPELINE)
    again = Workflow.from_text(PIPELINE.replace("timeout: 600", "timeout: 10m"))
    changed = Workflow.from_text(PIPELINE.replace("default: 100", "default: 101"))
    assert first.digest == again.digest
    assert first.digest != changed.digest
    assert len(first.digest) == 64


def test_compile_resolves_graph_retry_and_outputs() -> None:
    compiled = Workflow.from_text(PIPELINE).compile()
    assert isinstance(compiled, CompiledWorkflow)
    assert list(compiled.blocks) == ["fetch", "total", "notify", "audit"]
    assert compiled.roots == ("fetch",)
    assert compiled.leaves == ("notify", "audit")
    assert compiled.blocks["fetch"].dependents == ("total", "audit")
    assert compiled.blocks["notify"].dependencies == ("total",)
    assert compiled.blocks["fetch"].retry == RetryPolicy(max_attempts=2, initial_interval=0.5)
    assert compiled.blocks["fetch"].timeout == 90
    assert compiled.blocks["total"].index == 1
    condition = compiled.blocks["notify"].condition
    assert condition is not None
    scope = {"blocks": {"total": {"output": 150}}, "params": {"threshold": 100}}
    assert condition.render(scope) is True
    assert compiled.outputs is not None and compiled.outputs["total"].render(scope) == 150


def test_compiled_fields_render_to_the_instance_to_run() -> None:
    compiled = Workflow.from_text(PIPELINE).compile()
    block = compiled.blocks["total"]
    rendered = block.fields.render({"blocks": {"fetch": {"output": [1, 2]}}})
    assert rendered == {"function": "examples.orders:total", "args": {"orders": [1, 2]}}
    instance = block.spec.with_fields(rendered)
    assert instance.args == {"orders": [1, 2]} and instance.retry is None  # type: ignore[attr-defined]


def test_compile_is_cached_until_the_workflow_changes() -> None:
    wf = build_totals()
    assert wf.compile() is wf.compile()
    before = wf.compile()
    wf.add({"id": "extra", "type": "noop"})
    assert wf.compile() is not before


def test_outputs_default_to_none_for_leaves() -> None:
    wf = build_totals()
    assert wf.compile().outputs is None


def test_load_reads_a_file_and_knows_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE)
    wf = load(path)
    assert wf.id == "order-report" and wf.source_dir == tmp_path.resolve()


def test_load_reports_problems_with_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.replace("depends_on: [fetch]", "depends_on: [fecth]"))
    with pytest.raises(DefinitionError) as caught:
        load(path)
    assert caught.value.source == str(path)
    assert str(caught.value.problems[0]) == (
        "blocks[3].depends_on[0] (line 24): unknown block 'fecth'; did you mean 'fetch'?"
    )
