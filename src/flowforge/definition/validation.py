"""Validation of a workflow definition: every problem at once, each with location and line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from flowforge.definition.block import COMMON_ALIASES, COMMON_FIELDS, BlockSpec
from flowforge.definition.control_base import SINGLE_BODY_ID, ContainerBlock
from flowforge.definition.graph import cycle_message, find_cycles
from flowforge.definition.messages import closest, pydantic_problems
from flowforge.definition.models import (
    ParameterSpec,
    RetryPolicy,
    Settings,
    WorkflowSpec,
    output_key,
)
from flowforge.definition.parameters import check_value, describe
from flowforge.definition.registry import BlockTypeRegistry, default_registry
from flowforge.definition.source import LineMap, format_location
from flowforge.definition.templates import (
    ENVIRONMENT,
    SCOPE_NAMES,
    Template,
    compile_expression,
    compile_value,
    iter_template_strings,
    syntax_error_message,
)
from flowforge.errors import DefinitionError, Problem

__all__ = ["DEFAULT_MAX_BLOCKS", "validate"]

DEFAULT_MAX_BLOCKS = 1000
_ALLOWED_NAMES = SCOPE_NAMES | frozenset(ENVIRONMENT.globals)
_SCOPE_HINT = "use params., secrets., blocks., run., item, index or iteration"
_EXPRESSION_NAMES = frozenset({"output", "iteration", "index"})
"""Also in scope of a loop's ``until``: the iteration's ``output`` and number."""
_HEADER_FIELDS = frozenset(
    {
        *WorkflowSpec.model_fields,
        *Settings.model_fields,
        *RetryPolicy.model_fields,
        *ParameterSpec.model_fields,
    }
)


def validate(
    data: Any,
    *,
    lines: LineMap | None = None,
    source: str | None = None,
    registry: BlockTypeRegistry | None = None,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
) -> WorkflowSpec:
    """The validated definition; ``DefinitionError`` lists every problem found in ``data``.

    ``lines`` (from :func:`flowforge.definition.source.parse_text`) adds YAML lines to the
    problems and contributes the problems found while reading (duplicate keys).
    """
    checker = _Checker(lines or LineMap(), registry or default_registry(), max_blocks)
    spec = checker.check(data)
    if checker.problems or spec is None:
        ordered = sorted(checker.problems, key=lambda p: (p.line is None, p.line or 0))
        raise DefinitionError(ordered, source)
    return spec


@dataclass
class _Checker:
    lines: LineMap
    registry: BlockTypeRegistry
    max_blocks: int
    problems: list[Problem] = field(default_factory=list)
    block_ids: set[str] = field(default_factory=set)
    parameters: dict[str, Any] = field(default_factory=dict)
    implicit: dict[str, tuple[str, ...]] = field(default_factory=dict)
    raw_edges: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    """(index, id, depends_on) of blocks that failed validation: still checked as a graph."""

    def add(self, path: Iterable[Any], message: str) -> None:
        path = tuple(path)
        self.problems.append(Problem(format_location(path), message, self.lines.line_for(path)))

    def check(self, data: Any) -> WorkflowSpec | None:
        self.problems.extend(self.lines.problems)
        if data is None:
            self.add((), "the definition is empty")
            return None
        if not isinstance(data, Mapping):
            got = describe(data)
            self.add((), f"a workflow definition must be a mapping (id, blocks, …), got {got}")
            return None
        raw_parameters = data.get("parameters")
        self.parameters = dict(raw_parameters) if isinstance(raw_parameters, Mapping) else {}
        blocks = self._blocks(data.get("blocks", _MISSING))
        spec = self._header(data, [block for _, block in blocks])
        self._references(blocks, data.get("outputs"))
        self._cycles(blocks)
        return spec

    # blocks ------------------------------------------------------------------------------

    def _blocks(self, raw: Any) -> list[tuple[int, BlockSpec]]:
        if raw is _MISSING:
            self.add(("blocks",), "required field is missing: a workflow needs a list of blocks")
            return []
        if not isinstance(raw, list):
            self.add(("blocks",), f"must be a list of blocks, got {describe(raw)}")
            return []
        if not raw:
            self.add(("blocks",), "a workflow needs at least one block")
        if len(raw) > self.max_blocks:
            self.add(("blocks",), f"{len(raw)} blocks is more than the limit of {self.max_blocks}")
            return []
        self._duplicate_ids(raw)
        valid = []
        for index, item in enumerate(raw):
            block = self._block(index, item)
            if block is not None:
                valid.append((index, block))
        return valid

    def _duplicate_ids(self, raw: list[Any]) -> None:
        first: dict[str, int] = {}
        for index, item in enumerate(raw):
            block_id = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(block_id, str):
                continue
            if block_id in first:
                self.add(
                    ("blocks", index, "id"),
                    f"duplicate block id '{block_id}' (already used by blocks[{first[block_id]}])",
                )
            else:
                first[block_id] = index
        self.block_ids = set(first)

    def _block(self, index: int, item: Any) -> BlockSpec | None:
        block = self._block_at(("blocks", index), item)
        if block is None and isinstance(item, Mapping):
            self._keep_raw_edges(index, item)
        return block

    def _block_at(self, path: tuple[Any, ...], item: Any) -> BlockSpec | None:
        if not isinstance(item, Mapping):
            self.add(path, f"a block must be a mapping with 'id' and 'type', got {describe(item)}")
            return None
        type_name = item.get("type", _MISSING)
        cls = self._block_class(path, type_name)
        if cls is None:
            common = {k: v for k, v in item.items() if k in COMMON_ALIASES or k in COMMON_FIELDS}
            self._model(BlockSpec, {**common, "type": "?"}, path)
            return None
        if issubclass(cls, ContainerBlock) and "do" in item:
            body = self._body((*path, "do"), item["do"])
            if body is None:
                # report the container's other problems too, with a stand-in body
                self._model(cls, {**item, "do": {"type": "noop"}}, path)
                return None
            item = {**item, "do": body}
        block = self._model(cls, item, path, context={"registry": self.registry})
        return block if isinstance(block, BlockSpec) else None

    def _body(self, path: tuple[Any, ...], raw: Any) -> Any:
        """The blocks of a ``do`` (one block, or a list forming a sub-graph), or None."""
        if isinstance(raw, Mapping):
            return self._block_at(path, {"id": SINGLE_BODY_ID, **raw})
        if not isinstance(raw, list) or not raw:
            self.add(path, f"must be a block or a non-empty list of blocks, got {describe(raw)}")
            return None
        first: dict[str, int] = {}
        for index, item in enumerate(raw):
            block_id = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(block_id, str) and block_id in first:
                where = (*path, index, "id")
                self.add(
                    where,
                    f"duplicate block id '{block_id}' (already used by do[{first[block_id]}])",
                )
            elif isinstance(block_id, str):
                first[block_id] = index
        blocks = [self._block_at((*path, index), item) for index, item in enumerate(raw)]
        if any(block is None for block in blocks):
            return None
        return tuple(blocks)

    def _keep_raw_edges(self, index: int, item: Mapping[Any, Any]) -> None:
        """An invalid block still takes part in the graph checks (unknown dependencies,
        cycles), so that every problem is reported at once."""
        block_id, depends_on = item.get("id"), item.get("depends_on", ())
        if isinstance(depends_on, str):
            depends_on = (depends_on,)
        if isinstance(block_id, str) and isinstance(depends_on, list | tuple):
            deps = tuple(d for d in depends_on if isinstance(d, str))
            self.raw_edges.append((index, block_id, deps))

    def _block_class(self, path: tuple[Any, ...], type_name: Any) -> type[BlockSpec] | None:
        if type_name is _MISSING:
            self.add((*path, "type"), "required field is missing")
            return None
        if not isinstance(type_name, str):
            self.add((*path, "type"), f"must be a block type name, got {describe(type_name)}")
            return None
        try:
            cls = self.registry.get(type_name)
        except Exception as error:  # a custom type whose module is broken
            self.add((*path, "type"), f"block type '{type_name}' could not be loaded: {error}")
            return None
        if cls is None:
            self.add((*path, "type"), self.registry.unknown_type_message(type_name))
        return cls

    def _model(self, cls: type[Any], data: Any, path: tuple[Any, ...], **kwargs: Any) -> Any:
        try:
            return cls.model_validate(data, **kwargs)
        except ValidationError as error:
            known = {f.alias or n for n, f in cls.model_fields.items()} | _HEADER_FIELDS
            for where, message in pydantic_problems(error, path, known):
                if where[:1] != ("blocks",) or path[:1] == ("blocks",):
                    self.add(where, message)
            return None

    # workflow fields -------------------------------------------------------------------------

    def _header(self, data: Mapping[str, Any], blocks: list[BlockSpec]) -> WorkflowSpec | None:
        self._output_collisions(data.get("outputs"))
        for name, spec in self.parameters.items():
            self._parameter(name, spec)
        context = {"registry": self.registry}
        spec = self._model(WorkflowSpec, {**data, "blocks": blocks}, (), context=context)
        return spec if isinstance(spec, WorkflowSpec) else None

    def _parameter(self, name: Any, raw: Any) -> None:
        path = ("parameters", name)
        if not isinstance(name, str) or not _is_name(name):
            self.add(path, f"{name!r} is not a valid parameter name: use letters, digits and '_'")
        try:
            spec = ParameterSpec.model_validate(raw)
        except ValidationError:
            return  # reported by the WorkflowSpec validation
        if spec.default is not None:
            for problem in check_value(spec, spec.default, (*path, "default")):
                self.add((*path, "default"), problem.message)

    def _output_collisions(self, outputs: Any) -> None:
        if not isinstance(outputs, Mapping):
            return
        seen: dict[str, Any] = {}
        for key in outputs:
            name = _output_name(key)
            if name in seen:
                self.add(("outputs", key), f"output {key!r} collides with output {seen[name]!r}")
            else:
                seen[name] = key

    # templates and references ----------------------------------------------------------------

    def _references(self, blocks: list[tuple[int, BlockSpec]], outputs: Any) -> None:
        entries = [(("blocks", index), block) for index, block in blocks]
        self.implicit.update(self._level(entries, frozenset(), frozenset()))
        if isinstance(outputs, Mapping):
            for path, text in iter_template_strings(outputs, ("outputs",)):
                compiled = self._compile(path, text, compile_value)
                if compiled is not None:
                    self._check_template(path, compiled, [])

    def _level(
        self,
        entries: list[tuple[tuple[Any, ...], BlockSpec]],
        outer: frozenset[str],
        names: frozenset[str],
        outer_found: list[str] | None = None,
    ) -> dict[str, tuple[str, ...]]:
        """Check the templates of one graph (the workflow's, or a body's); return each block's
        implicit dependencies in it. References to enclosing graphs go to ``outer_found``."""
        ids = frozenset(block.id for _, block in entries)
        visible = ids | outer
        implicit: dict[str, tuple[str, ...]] = {}
        for path, block in entries:
            found: list[str] = []
            body_ids: frozenset[str] = (
                frozenset(b.id for b in block.body)
                if isinstance(block, ContainerBlock)
                else frozenset()
            )
            for where, template in self._block_templates(path, block):
                allowed = (
                    visible | body_ids if where[len(path)] in block.expression_fields else visible
                )
                extra = _EXPRESSION_NAMES if where[len(path)] in block.expression_fields else names
                self._check_template(where, template, found, allowed, names | extra)
            if isinstance(block, ContainerBlock):
                self._body_level(path, block, visible, names, found)
            found = [d for d in found if d not in body_ids]
            implicit[block.id] = tuple(d for d in dict.fromkeys(found) if d in ids)
            if outer_found is not None:
                outer_found.extend(d for d in found if d not in ids)
        for path, block in entries:
            if block.type == "switch":
                self._switch_edges(path, block, ids, implicit)
        return implicit

    def _body_level(
        self,
        path: tuple[Any, ...],
        block: ContainerBlock,
        visible: frozenset[str],
        names: frozenset[str],
        found: list[str],
    ) -> None:
        body_path = (*path, "do")
        entries = (
            [(body_path, block.body[0])]
            if block.single
            else [((*body_path, i), b) for i, b in enumerate(block.body)]
        )
        for where, inner in entries:
            if inner.id in visible and not (block.single and inner.id == SINGLE_BODY_ID):
                self.add(
                    (*where, "id"),
                    f"block id '{inner.id}' is already used outside this 'do': choose another",
                )
        variables = block.body_variables()
        implicit = self._level(entries, visible, names | variables, found)
        graph: dict[str, tuple[str, ...]] = {}
        ids = {inner.id for _, inner in entries}
        for where, inner in entries:
            for position, dependency in enumerate(inner.depends_on):
                if dependency not in ids:
                    self.add(
                        (*where, "depends_on", position),
                        f"'{dependency}' is not a block of this 'do': a body's depends_on names "
                        f"blocks of the same body (put outside dependencies on '{block.id}')",
                    )
            deps = (*inner.depends_on, *implicit.get(inner.id, ()))
            graph[inner.id] = tuple(d for d in dict.fromkeys(deps) if d in ids)
        for cycle in find_cycles(graph):
            where = next(w for w, inner in entries if inner.id == cycle[0])
            self.add(where, cycle_message(cycle))

    def _switch_edges(
        self,
        path: tuple[Any, ...],
        block: BlockSpec,
        ids: frozenset[str],
        implicit: dict[str, tuple[str, ...]],
    ) -> None:
        """A block a switch lists depends on the switch, without saying so."""
        from flowforge.definition.control_specs import SwitchSpec

        switch = block
        assert isinstance(switch, SwitchSpec)
        places: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
            (("cases", key), ids_) for key, ids_ in switch.cases.items()
        ]
        places.append((("default",), switch.default))
        for where, block_ids in places:
            for position, block_id in enumerate(block_ids):
                location = (*path, *where, position)
                if block_id == switch.id:
                    self.add(location, "a switch cannot choose itself")
                elif block_id not in ids:
                    self.add(location, f"unknown block '{block_id}'{closest(block_id, ids)}")
                else:
                    implicit[block_id] = (*implicit.get(block_id, ()), switch.id)

    def _block_templates(
        self, path: tuple[Any, ...], block: BlockSpec
    ) -> Iterable[tuple[tuple[Any, ...], Template]]:
        fields = type(block).model_fields
        if block.if_ is not None:
            template = self._compile((*path, "if"), block.if_, compile_expression)
            if template is not None:
                yield (*path, "if"), template
        for name, value in block.template_fields().items():
            start = (*path, fields[name].alias or name)
            if name in type(block).expression_fields:
                template = self._compile(start, value, compile_expression)
                if template is not None:
                    yield start, template
                continue
            if name in type(block).raw_fields:
                continue
            for where, text in iter_template_strings(value, start):
                template = self._compile(where, text, compile_value)
                if template is not None:
                    yield where, template

    def _compile(self, path: tuple[Any, ...], text: str, compiler: Any) -> Template | None:
        try:
            template: Template = compiler(text)
        except TemplateSyntaxError as error:
            self.add(path, syntax_error_message(error))
            return None
        return template

    def _check_template(
        self,
        path: tuple[Any, ...],
        template: Template,
        found: list[str],
        block_ids: frozenset[str] | set[str] | None = None,
        names: frozenset[str] = frozenset(),
    ) -> None:
        known = self.block_ids if block_ids is None else block_ids
        for name in sorted(template.names - _ALLOWED_NAMES - names):
            self.add(path, f"unknown name '{name}' in template: {_SCOPE_HINT}")
        for block_id in template.block_ids:
            if block_id in known:
                found.append(block_id)
            else:
                self.add(path, f"unknown block '{block_id}'{closest(block_id, known)}")
        for name in template.referenced("params"):
            if name not in self.parameters:
                self.add(path, f"unknown parameter '{name}'{closest(name, self.parameters)}")
        for name in template.referenced("secrets"):
            self._check_secret(path, name)

    def _check_secret(self, path: tuple[Any, ...], name: str) -> None:
        if name not in self.parameters:
            self.add(path, f"unknown secret '{name}': declare a parameter with type: secret")
            return
        raw = self.parameters[name]
        if not (isinstance(raw, Mapping) and raw.get("type") == "secret"):
            self.add(path, f"parameter '{name}' is not a secret: declare it with type: secret")

    # graph -------------------------------------------------------------------------------------

    def _cycles(self, blocks: list[tuple[int, BlockSpec]]) -> None:
        edges = [
            (index, block.id, block.depends_on, self.implicit.get(block.id, ()))
            for index, block in blocks
        ] + [(index, block_id, deps, ()) for index, block_id, deps in self.raw_edges]
        index_of = {block_id: index for index, block_id, _, _ in edges}
        explicit = {block_id: deps for _, block_id, deps, _ in edges}
        graph = {
            block_id: tuple(d for d in dict.fromkeys((*deps, *implicit)) if d in index_of)
            for _, block_id, deps, implicit in edges
        }
        for index, _, deps, _ in sorted(edges, key=lambda edge: edge[0]):
            for position, dependency in enumerate(deps):
                if dependency not in self.block_ids:
                    hint = closest(dependency, self.block_ids)
                    where = ("blocks", index, "depends_on", position)
                    self.add(where, f"unknown block '{dependency}'{hint}")
        for cycle in find_cycles(graph):
            path: tuple[Any, ...] = ("blocks", index_of[cycle[0]])
            if cycle[1] in explicit[cycle[0]]:
                path = (*path, "depends_on", explicit[cycle[0]].index(cycle[1]))
            self.add(path, cycle_message(cycle))


_MISSING: Any = object()


def _is_name(text: str) -> bool:
    return text.isidentifier() and text.isascii()


def _output_name(key: Any) -> str:
    """Two output names collide when equal as JSON keys once case and '-'/'_' are ignored."""
    return str(output_key(key)).casefold().replace("-", "_")
