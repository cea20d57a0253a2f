"""Templates and expressions: Jinja2 in a sandbox, compiled once, rendered on the hot path.

A string that is exactly one ``{{ expr }}`` (surrounding whitespace allowed) renders to the
native value of ``expr``; any other string containing ``{{`` or ``{%`` renders to text. Bare
expressions (``if``, ``until``) render to their native value too.

Native values come from compiling the expression itself (like ``Environment.compile_expression``)
rather than from ``NativeEnvironment``: the latter re-parses rendered text with ``literal_eval``,
so ``{{ params.code }}`` holding the string ``"007"`` would come back as the integer 7.

A template that is a plain path (``{{ blocks.fetch.output }}``, ``{{ params["n"] }}``) is
rendered without Jinja by walking the path; anything unusual on the way (a missing key, a
non-mapping) falls back to Jinja so the result and the error are always Jinja's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import StrictUndefined, Undefined, meta, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flowforge.definition.fields import is_template_text
from flowforge.errors import FlowforgeError, TemplateError

__all__ = [
    "REFERENCE_ROOTS",
    "SCOPE_NAMES",
    "Template",
    "TemplateSyntaxError",
    "compile_expression",
    "compile_value",
    "iter_template_strings",
]

REFERENCE_ROOTS = frozenset({"blocks", "params", "secrets"})
SCOPE_NAMES = frozenset({"params", "secrets", "blocks", "run", "item", "index", "iteration"})
_MAX_SEQUENCE = 1_000_000
_MAX_EXPONENT = 10_000
_SINGLE = re.compile(r"\s*\{\{-?(.*?)-?\}\}\s*", re.DOTALL)

Renderer = Callable[[Mapping[str, Any]], Any]


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``a.b`` on a mapping meaning ``a["b"]`` first.

    So ``params.items`` is the parameter named ``items``, not ``dict.items``.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Refuse results that would eat the worker's memory or CPU ('x' * 10**10, 9 ** 9 ** 9).
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                too_long = isinstance(seq, (str, list, tuple)) and isinstance(count, int)
                if too_long and len(seq) * count > _MAX_SEQUENCE:
                    raise SecurityError("the repeated sequence would be too long")
        return super().call_binop(context, operator, left, right)


ENVIRONMENT = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A compiled value: render it with a scope to get the value the engine uses.

    ``references`` holds every ``(root, name)`` pair for roots ``blocks``, ``params`` and
    ``secrets``; ``block_ids`` the referenced blocks in first-mention order; ``names`` every
    free variable the templates read (``params``, ``run``, ...).
    """

    source: Any
    references: frozenset[tuple[str, str]] = frozenset()
    names: frozenset[str] = frozenset()
    block_ids: tuple[str, ...] = ()
    is_static: bool = True
    _renderer: Renderer | None = field(default=None, repr=False)

    def render(self, scope: Mapping[str, Any]) -> Any:
        """The value for ``scope``; a static template returns its source itself (no copy)."""
        if self._renderer is None:
            return self.source
        return self._renderer(scope)

    def referenced(self, root: str) -> tuple[str, ...]:
        """Names referenced under ``root`` (``"blocks"`` -> block ids), sorted."""
        return tuple(sorted(name for r, name in self.references if r == root))


class _Compiled(NamedTuple):
    render: Renderer
    references: tuple[tuple[str, str], ...]  # in first-mention order
    names: frozenset[str]


class _Found:
    """What the templates of one value reference, gathered while compiling it."""

    def __init__(self) -> None:
        self.references: dict[tuple[str, str], None] = {}
        self.names: set[str] = set()

    def add(self, compiled: _Compiled) -> None:
        self.references.update(dict.fromkeys(compiled.references))
        self.names |= compiled.names

    def template(self, source: Any, renderer: Renderer | None) -> Template:
        return Template(
            source=source,
            references=frozenset(self.references),
            names=frozenset(self.names),
            block_ids=tuple(name for root, name in self.references if root == "blocks"),
            is_static=renderer is None,
            _renderer=renderer,
        )


def compile_value(value: Any, *, raw_keys: frozenset[str] = frozenset()) -> Template:
    """Compile every template string in ``value`` (nested dicts, lists, tuples) once.

    Keys of the top-level mapping listed in ``raw_keys`` are kept as they are. Mapping keys are
    never rendered. Raises ``jinja2.TemplateSyntaxError`` for a template that does not parse.
    """
    found = _Found()
    if raw_keys and isinstance(value, Mapping):
        parts = [
            (key, item, None if key in raw_keys else _build(item, found))
            for key, item in value.items()
        ]
        renderer = _mapping_renderer(parts)
    else:
        renderer = _build(value, found)
    return found.template(value, renderer)


def compile_expression(expression: str) -> Template:
    """Compile a bare expression (``blocks.total.output > params.threshold``).

    A string holding ``{{ … }}`` is accepted too and compiled as a template, so that
    ``if: "{{ x > 1 }}"`` means the same as ``if: "x > 1"``.
    """
    if is_template_text(expression):
        return compile_value(expression)
    compiled = _compile_bare_expression(expression)
    found = _Found()
    found.add(compiled)
    return found.template(expression, compiled.render)


def iter_template_strings(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every template string in ``value`` with its path, for validation."""
    if is_template_text(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_template_strings(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from iter_template_strings(item, (*path, index))


def _build(value: Any, found: _Found) -> Renderer | None:
    if isinstance(value, str):
        if not is_template_text(value):
            return None
        compiled = _compile_string(value)
        found.add(compiled)
        return compiled.render
    if isinstance(value, Mapping):
        return _mapping_renderer([(k, v, _build(v, found)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        items = [(v, _build(v, found)) for v in value]
        if all(r is None for _, r in items):
            return None
        kind = type(value) if type(value) in (list, tuple) else list

        def render_sequence(scope: Mapping[str, Any]) -> Any:
            return kind([v if r is None else r(scope) for v, r in items])

        return render_sequence
    return None


def _mapping_renderer(parts: list[tuple[Any, Any, Renderer | None]]) -> Renderer | None:
    if all(r is None for _, _, r in parts):
        return None

    def render_mapping(scope: Mapping[str, Any]) -> dict[Any, Any]:
        return {k: v if r is None else r(scope) for k, v, r in parts}

    return render_mapping


@lru_cache(maxsize=8192)
def _compile_string(text: str) -> _Compiled:
    single = _SINGLE.fullmatch(text)
    if single is not None:
        expression = _parse_expression(single.group(1), strict=False)
        if expression is not None:
            return _compile_expression_node(expression, text)
    ast = ENVIRONMENT.parse(text)
    template = ENVIRONMENT.from_string(ast)
    references, names = _analyse(ast)
    return _Compiled(_text_renderer(template, text), references, names)


@lru_cache(maxsize=8192)
def _compile_bare_expression(expression: str) -> _Compiled:
    node = _parse_expression(expression, strict=True)
    assert node is not None
    return _compile_expression_node(node, expression)


def _parse_expression(source: str, *, strict: bool) -> nodes.Expr | None:
    parser = Parser(ENVIRONMENT, source, state="variable")
    try:
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                f"unexpected '{parser.stream.current.value}' after the expression",
                parser.stream.current.lineno,
            )
    except TemplateSyntaxError:
        if strict:
            raise
        return None
    return expression


def _compile_expression_node(expression: nodes.Expr, source: str) -> _Compiled:
    body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
    ast = nodes.Template(body, lineno=1)
    ast.set_environment(ENVIRONMENT)
    template = ENVIRONMENT.from_string(ast)
    references, names = _analyse(ast)
    slow = _expression_renderer(template, source, _builds_containers(expression))
    path = _path_of(expression)
    render = slow if path is None else _path_renderer(path[0], path[1], slow, source)
    return _Compiled(render, references, names)


def _analyse(ast: nodes.Template) -> tuple[tuple[tuple[str, str], ...], frozenset[str]]:
    references: dict[tuple[str, str], None] = {}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node  # type: ignore[attr-defined]
        if not (isinstance(target, nodes.Name) and target.name in REFERENCE_ROOTS):
            continue
        if isinstance(node, nodes.Getattr):
            references[(target.name, node.attr)] = None
        elif isinstance(node, nodes.Getitem) and _is_simple_key(node.arg):
            key = node.arg.value  # type: ignore[attr-defined]
            if isinstance(key, str):
                references[(target.name, key)] = None
    return tuple(references), frozenset(meta.find_undeclared_variables(ast))


def _builds_containers(expression: nodes.Expr) -> bool:
    kinds = (nodes.List, nodes.Tuple, nodes.Dict)
    return isinstance(expression, kinds) or any(True for _ in expression.find_all(kinds))


Step = tuple[bool, Any]  # (is attribute access, key)


def _path_of(expression: nodes.Expr) -> tuple[str, tuple[Step, ...]] | None:
    steps: list[Step] = []
    node: nodes.Node = expression
    while True:
        if isinstance(node, nodes.Getattr):
            steps.append((True, node.attr))
            node = node.node
        elif isinstance(node, nodes.Getitem) and _is_simple_key(node.arg):
            steps.append((False, node.arg.value))  # type: ignore[attr-defined]
            node = node.node
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            return node.name, tuple(reversed(steps))
        else:
            return None


def _is_simple_key(node: nodes.Node) -> bool:
    if not isinstance(node, nodes.Const):
        return False
    return isinstance(node.value, str) or (
        isinstance(node.value, int) and not isinstance(node.value, bool)
    )


def _path_renderer(root: str, steps: tuple[Step, ...], slow: Renderer, source: str) -> Renderer:
    getattr_, getitem = ENVIRONMENT.getattr, ENVIRONMENT.getitem

    def render_path(scope: Mapping[str, Any]) -> Any:
        try:
            value = scope[root]
            for is_attribute, key in steps:
                if isinstance(value, Mapping):
                    try:
                        value = value[key]
                        continue
                    except (KeyError, TypeError):
                        pass
                value = getattr_(value, key) if is_attribute else getitem(value, key)
                if isinstance(value, Undefined):
                    return slow(scope)  # Jinja's own error message, or Jinja's own answer
        except KeyError:
            return slow(scope)
        except FlowforgeError:
            raise
        except Exception as error:
            raise _render_error(source, error) from error
        return value

    return render_path


def _expression_renderer(template: JinjaTemplate, source: str, check_items: bool) -> Renderer:
    # Template.new_context copies the template's globals ChainMap on every call (~4 µs);
    # a plain dict of them makes a context four times cheaper.
    plain_globals = dict(template.globals)
    blocks, root = template.blocks, template.root_render_func

    def render_expression(scope: Mapping[str, Any]) -> Any:
        try:
            context = new_context(ENVIRONMENT, None, blocks, dict(scope), False, plain_globals)
            for _ in root(context):
                pass
            value = context.vars["result"]
            _fail_if_undefined(value, check_items)
        except FlowforgeError:
            raise
        except Exception as error:
            raise _render_error(source, error) from error
        return value

    return render_expression


def _text_renderer(template: JinjaTemplate, source: str) -> Renderer:
    plain_globals = dict(template.globals)
    blocks, root = template.blocks, template.root_render_func

    def render_text(scope: Mapping[str, Any]) -> str:
        try:
            context = new_context(ENVIRONMENT, None, blocks, dict(scope), False, plain_globals)
            return "".join(root(context))
        except FlowforgeError:
            raise
        except Exception as error:
            raise _render_error(source, error) from error

    return render_text


def _fail_if_undefined(value: Any, deep: bool) -> None:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if not deep:
        return
    if isinstance(value, dict):
        for item in value.values():
            _fail_if_undefined(item, True)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _fail_if_undefined(item, True)


def _render_error(source: str, error: Exception) -> TemplateError:
    shown = source if len(source) <= 120 else source[:117] + "..."
    if isinstance(error, (UndefinedError, SecurityError)):
        cause = str(error)
    else:
        cause = f"{type(error).__name__}: {error}"
    return TemplateError(f"template {shown!r} failed: {cause}", template=source)


def syntax_error_message(error: TemplateSyntaxError) -> str:
    """A person's message for a template syntax error."""
    line = f" (line {error.lineno} of the template)" if error.lineno else ""
    return f"template syntax error: {error.message}{line}"
