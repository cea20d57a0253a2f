"""The compiled form of a validated workflow: what the engine reads on its hot path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flowforge.definition.block import BlockSpec
from flowforge.definition.control_base import ContainerBlock, ControlBlock
from flowforge.definition.graph import dependencies_of, dependents, leaves, roots
from flowforge.definition.models import RetryPolicy, WorkflowSpec
from flowforge.definition.templates import Template, compile_expression, compile_value

__all__ = ["CompiledBlock", "CompiledBody", "CompiledWorkflow", "compile_workflow"]

_NO_CALLABLES: Mapping[str, Callable[..., Any]] = MappingProxyType({})
_NO_TEMPLATES: Mapping[str, Template] = MappingProxyType({})


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
    expressions: Mapping[str, Template] = field(default_factory=lambda: _NO_TEMPLATES)
    """Bare-expression fields (``switch.value``, ``loop.until``), compiled."""
    body: CompiledBody | None = None
    """The ``do`` of a ``for_each`` or ``loop``."""
    control: bool = False
    """Run by the engine itself (control flow), never by a worker."""
    guards: tuple[tuple[str, frozenset[str]], ...] = ()
    """(switch id, the case keys that choose this block) for each switch listing it."""

    @property
    def kind(self) -> str:
        return self.spec.type


@dataclass(frozen=True, slots=True)
class CompiledBody:
    """A container's ``do``: its blocks (a graph of their own) and how iterations look."""

    blocks: dict[str, CompiledBlock]
    roots: tuple[str, ...]
    single: bool
    """One block: an iteration's output is its output (else a mapping by block id)."""


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
    blocks, graph, _ = _compile_graph(spec.blocks, default_retry, None)
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


def _compile_graph(
    specs: Sequence[BlockSpec], default_retry: RetryPolicy, default_timeout: float | None
) -> tuple[dict[str, CompiledBlock], dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The blocks of one graph (a workflow's or a body's), its edges, and the blocks of
    enclosing graphs its templates read (they become dependencies of the container)."""
    ids = {block.id for block in specs}
    parts: dict[str, tuple[Any, ...]] = {}
    outside: list[str] = []
    for block in specs:
        kind = type(block)
        condition = None if block.if_ is None else compile_expression(block.if_)
        expressions = {
            name: compile_expression(getattr(block, name)) for name in kind.expression_fields
        }
        fields = compile_value(block.template_fields(), raw_keys=kind.raw_fields)
        body = None
        refs = [*(condition.block_ids if condition else ()), *fields.block_ids]
        if isinstance(block, ContainerBlock):
            body, body_outside = _compile_body(
                block, block.retry or default_retry, block.timeout or default_timeout
            )
            refs.extend(body_outside)
            inner = {b.id for b in block.body}
            for template in expressions.values():
                refs.extend(ref for ref in template.block_ids if ref not in inner)
        else:
            for template in expressions.values():
                refs.extend(template.block_ids)
        outside.extend(ref for ref in refs if ref not in ids)
        parts[block.id] = (condition, fields, expressions, body, tuple(r for r in refs if r in ids))
    graph = {block.id: dependencies_of(block, parts[block.id][4]) for block in specs}
    guards: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for block in specs:
        if block.type == "switch":
            from flowforge.definition.control_specs import SwitchSpec

            assert isinstance(block, SwitchSpec)
            for listed, keys in block.switch_listing().items():
                guards.setdefault(listed, []).append((block.id, frozenset(keys)))
                graph[listed] = tuple(dict.fromkeys((*graph[listed], block.id)))
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
            timeout=block.timeout or default_timeout,
            fields=parts[block.id][1],
            expressions=MappingProxyType(parts[block.id][2]),
            body=parts[block.id][3],
            control=isinstance(block, ControlBlock),
            guards=tuple(guards.get(block.id, ())),
        )
        for index, block in enumerate(specs)
    }
    return blocks, graph, tuple(dict.fromkeys(outside))


def _compile_body(
    container: ContainerBlock, retry: RetryPolicy, timeout: float | None
) -> tuple[CompiledBody, tuple[str, ...]]:
    blocks, graph, outside = _compile_graph(container.body, retry, timeout)
    return CompiledBody(blocks=blocks, roots=roots(graph), single=container.single), outside
