"""``Workflow``: the one object users hold, loaded from a definition or built in Python."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from flowforge.definition.block import BlockSpec
from flowforge.definition.compiled import CompiledWorkflow, compile_workflow
from flowforge.definition.models import ParameterSpec, RetryPolicy, Settings, WorkflowSpec
from flowforge.definition.registry import BlockTypeRegistry
from flowforge.definition.serialize import dump_model, to_json, to_yaml
from flowforge.definition.source import LineMap, load_source, parse_text
from flowforge.definition.validation import validate
from flowforge.errors import DefinitionError, Problem

__all__ = ["Workflow", "load"]

F = TypeVar("F", bound=Callable[..., Any])

_PYTHON_TYPES: dict[Any, str] = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    list: "array",
    dict: "object",
}


class Workflow:
    """A workflow definition: from YAML/JSON (:func:`load`, :meth:`from_dict`) or Python.

    >>> wf = Workflow("totals", parameters={"n": int})
    >>> @wf.block()
    ... def numbers(params): return list(range(params["n"]))
    >>> @wf.block()
    ... def total(numbers): return sum(numbers)   # receives the output of block "numbers"
    """

    def __init__(
        self,
        id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        settings: Settings | Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        header: dict[str, Any] = {"id": id, "title": title, "description": description}
        if parameters:
            header["parameters"] = {k: _parameter(k, v) for k, v in parameters.items()}
        if settings is not None:
            header["settings"] = (
                dump_model(settings) if isinstance(settings, Settings) else settings
            )
        header["outputs"] = None if outputs is None else dict(outputs)
        self._header = {k: v for k, v in header.items() if v is not None}
        self._blocks: list[BlockSpec | dict[str, Any]] = []
        self._callables: dict[str, Callable[..., Any]] = {}
        self._context_blocks: set[str] = set()
        self._source: str | None = None
        self._source_dir: Path | None = None
        self._spec: WorkflowSpec | None = None
        self._compiled: tuple[BlockTypeRegistry | None, CompiledWorkflow] | None = None

    # building ----------------------------------------------------------------------------------

    @overload
    def block(self, fn: F, /) -> F: ...

    @overload
    def block(
        self,
        fn: None = None,
        /,
        *,
        id: str | None = None,
        depends_on: Sequence[str] = (),
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        if_: str | None = None,
        trigger_rule: str = "all_success",
        continue_on_failure: bool = False,
        description: str | None = None,
    ) -> Callable[[F], F]: ...

    def block(
        self,
        fn: F | None = None,
        /,
        *,
        id: str | None = None,
        depends_on: Sequence[str] = (),
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        if_: str | None = None,
        trigger_rule: str = "all_success",
        continue_on_failure: bool = False,
        description: str | None = None,
    ) -> F | Callable[[F], F]:
        """Declare a ``python`` block running the decorated function (sync or async).

        The block id is the function's name. A parameter named after an earlier block receives
        that block's output (and makes it a dependency), ``params`` receives the run's
        parameters, ``ctx`` the block context. Returns the function unchanged.
        """
        options = {
            "depends_on": list(depends_on),
            "retry": dump_model(retry) if isinstance(retry, RetryPolicy) else retry,
            "timeout": timeout,
            "if": if_,
            "trigger_rule": trigger_rule,
            "continue_on_failure": continue_on_failure,
            "description": description,
        }
        defaults = {"depends_on": [], "trigger_rule": "all_success", "continue_on_failure": False}
        options = {k: v for k, v in options.items() if v is not None and defaults.get(k) != v}

        def register(function: F) -> F:
            block_id = id or function.__name__
            args, wants_context = self._arguments(function, block_id)
            self._blocks.append(
                {
                    "id": block_id,
                    "type": "python",
                    "function": f"{function.__module__}:{function.__qualname__}",
                    "args": args,
                    **options,
                }
            )
            self._callables[block_id] = function
            if wants_context:
                self._context_blocks.add(block_id)
            self._changed()
            return function

        return register if fn is None else register(fn)

    def add(self, block: BlockSpec | Mapping[str, Any]) -> None:
        """Add a block of any type, as a block model or as plain data."""
        self._blocks.append(block if isinstance(block, BlockSpec) else dict(block))
        self._changed()

    def _arguments(
        self, function: Callable[..., Any], block_id: str
    ) -> tuple[dict[str, str], bool]:
        earlier = {b.id if isinstance(b, BlockSpec) else b.get("id") for b in self._blocks}
        args: dict[str, str] = {}
        wants_context = False
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name == "ctx":
                wants_context = True
            elif name == "params":
                args[name] = "{{ params }}"
            elif name in earlier:
                args[name] = f"{{{{ blocks.{name}.output }}}}"
            elif parameter.default is parameter.empty:
                where = f"blocks[{len(self._blocks)}].args.{name}"
                message = (
                    f"parameter '{name}' of {function.__qualname__}() is not a block declared "
                    f"before '{block_id}', 'params' or 'ctx'"
                )
                raise DefinitionError([Problem(where, message)], self.id)
        return args, wants_context

    def _changed(self) -> None:
        self._spec = None
        self._compiled = None

    # loading -----------------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        source: str | None = None,
        lines: LineMap | None = None,
        registry: BlockTypeRegistry | None = None,
    ) -> Workflow:
        """Validate plain data (parsed YAML/JSON); ``DefinitionError`` lists every problem."""
        spec = validate(data, lines=lines, source=source, registry=registry)
        workflow = cls(spec.id)
        workflow._header = {k: v for k, v in dump_model(spec).items() if k != "blocks"}
        workflow._blocks = list(spec.blocks)
        workflow._spec = spec
        workflow._source = source
        return workflow

    @classmethod
    def from_text(
        cls, text: str, *, source: str | None = None, registry: BlockTypeRegistry | None = None
    ) -> Workflow:
        """Parse and validate YAML or JSON text."""
        data, lines = parse_text(text, source)
        return cls.from_dict(data, source=source, lines=lines, registry=registry)

    # reading -----------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The workflow id."""
        return str(self._header.get("id"))

    @property
    def source_dir(self) -> Path | None:
        """The directory of the file this workflow was loaded from (for ``python`` imports)."""
        return self._source_dir

    @property
    def spec(self) -> WorkflowSpec:
        """The validated definition (``DefinitionError`` when it is not valid)."""
        if self._spec is None:
            self._spec = self._validate(None)
        return self._spec

    def compile(self, registry: BlockTypeRegistry | None = None) -> CompiledWorkflow:
        """The compiled workflow for the engine (cached)."""
        if self._compiled is not None and self._compiled[0] is registry:
            return self._compiled[1]
        spec = self.spec if registry is None else self._validate(registry)
        compiled = compile_workflow(
            spec,
            callables=self._callables,
            context_blocks=frozenset(self._context_blocks),
            source_dir=self._source_dir,
        )
        self._compiled = (registry, compiled)
        return compiled

    def _validate(self, registry: BlockTypeRegistry | None) -> WorkflowSpec:
        blocks = [dump_model(b) if isinstance(b, BlockSpec) else b for b in self._blocks]
        return validate({**self._header, "blocks": blocks}, source=self._source, registry=registry)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``if`` (not ``if_``), defaults left out, durations as ``1m30s``."""
        return dump_model(self.spec)

    def to_yaml(self) -> str:
        """The definition as YAML."""
        return to_yaml(self.to_dict())

    def to_json(self, *, indent: int | None = 2) -> str:
        """The definition as JSON."""
        return to_json(self.to_dict(), indent=indent)

    @property
    def digest(self) -> str:
        """sha256 of the canonical definition: equal definitions, equal digests."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<Workflow {self.id!r} with {len(self._blocks)} block(s)>"


def load(path: str | Path, *, registry: BlockTypeRegistry | None = None) -> Workflow:
    """Load and validate a YAML or JSON definition file."""
    data, lines = load_source(path)
    workflow = Workflow.from_dict(data, source=str(path), lines=lines, registry=registry)
    workflow._source_dir = Path(path).resolve().parent
    return workflow


def _parameter(name: str, value: Any) -> Any:
    if isinstance(value, type):
        kind = _PYTHON_TYPES.get(value)
        if kind is None:
            raise TypeError(f"parameter '{name}': use int, float, str, bool, list or dict")
        return {"type": kind, "required": True}
    if isinstance(value, ParameterSpec):
        return dump_model(value)
    return value
