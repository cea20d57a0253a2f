"""The compiled form of a validated workflow: what the engine reads on its hot path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flowforge.definition.block import BlockSpec
from flowforge.definition.graph import dependencies_of, dependents, leaves, roots
from flowforge.definition.models import RetryPolicy, WorkflowSpec
from flowforge.definition.templates import Template, compile_expression, compile_value

__all__ = ["CompiledBlock", "CompiledWorkflow", "compile_workflow"]

_NO_CALLABLES: Mapping[str, Callable[..., Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CompiledBlock:
    """One block, its templates compiled and its place in the graph resolved.

    ``fields.render(scope)`` returns every type-specific field (``raw_fields`` as declared);
    ``spec.with_fields(rendered)`` then gives the validated instance to run.
    """

    spec: BlockSpec
    id: str
    index: int
    dependencies: tuple[str, ...]
    dependents: tuple[str, ...]
    condition: Template | None
    retry: RetryPolicy
    timeout: float | None
    fields: Template


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """A workflow ready to run. ``outputs`` None means: the leaves' outputs keyed by block id.

    ``callables`` holds the functions of blocks declared with the Python API (by block id);
    ``context_blocks`` the ids of those whose function takes a ``ctx`` parameter.
    """

    spec: WorkflowSpec
    blocks: dict[str, CompiledBlock]
    roots: tuple[str, ...]
    leaves: tuple[str, ...]
    outputs: dict[str, Template] | None
    callables: Mapping[str, Callable[..., Any]] = field(default_factory=lambda: _NO_CALLABLES)
    context_blocks: frozenset[str] = frozenset()
    source_dir: Path | None = None
    """The directory of the definition file: ``python`` functions are imported from it too."""


def compile_workflow(
    spec: WorkflowSpec,
    *,
    callables: Mapping[str, Callable[..., Any]] | None = None,
    context_blocks: frozenset[str] = frozenset(),
    source_dir: Path | None = None,
) -> CompiledWorkflow:
    """Compile a validated ``spec`` (templates, conditions, dependencies, default retry)."""
    default_retry = spec.settings.retry or RetryPolicy()
    parts: dict[str, tuple[Template | None, Template, tuple[str, ...]]] = {}
    for block in spec.blocks:
        condition = None if block.if_ is None else compile_expression(block.if_)
        fields = compile_value(block.template_fields(), raw_keys=type(block).raw_fields)
        implicit = (*(condition.block_ids if condition else ()), *fields.block_ids)
        parts[block.id] = (condition, fields, dependencies_of(block, implicit))
    graph = {block_id: deps for block_id, (_, _, deps) in parts.items()}
    users = dependents(graph)
    blocks = {
        block.id: CompiledBlock(
            spec=block,
            id=block.id,
            index=index,
            dependencies=graph[block.id],
            dependents=users[block.id],
            condition=parts[block.id][0],
            retry=block.retry or default_retry,
            timeout=block.timeout,
            fields=parts[block.id][1],
        )
        for index, block in enumerate(spec.blocks)
    }
    outputs = None
    if spec.outputs is not None:
        outputs = {name: compile_value(value) for name, value in spec.outputs.items()}
    return CompiledWorkflow(
        spec=spec,
        blocks=blocks,
        roots=roots(graph),
        leaves=leaves(graph),
        outputs=outputs,
        callables=MappingProxyType(dict(callables or {})),
        context_blocks=context_blocks,
        source_dir=source_dir,
    )
