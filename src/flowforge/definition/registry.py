"""Where block type names are looked up: built-ins, then code registrations, then entry points."""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from pydantic import ConfigDict

from flowforge.definition.block import Block, BlockSpec
from flowforge.definition.builtin_specs import BUILTIN_SPECS
from flowforge.errors import NonRetryableError

__all__ = [
    "BlockTypeRegistry",
    "UnavailableBlock",
    "block_type",
    "default_registry",
    "registry_for_stored",
]

B = TypeVar("B", bound=BlockSpec)

ENTRY_POINT_GROUP = "flowforge.blocks"
BUILTIN_IMPLEMENTATIONS: dict[str, str] = {
    "noop": "flowforge.blocks.noop:NoopBlock",
    "transform": "flowforge.blocks.transform:TransformBlock",
    "python": "flowforge.blocks.python:PythonBlock",
    "fail": "flowforge.blocks.fail:FailBlock",
    "wait": "flowforge.blocks.wait:WaitBlock",
    # control flow: run by the engine itself, so the field models are the implementations
    "for_each": "flowforge.definition.control_specs:ForEachSpec",
    "loop": "flowforge.definition.control_specs:LoopSpec",
    "switch": "flowforge.definition.control_specs:SwitchSpec",
    "wait_for_signal": "flowforge.definition.control_specs:WaitForSignalSpec",
    "workflow": "flowforge.definition.control_specs:WorkflowCallSpec",
    # the block library (issue 4): each type in a module of its own, once it exists
    "http": "flowforge.blocks.http:HttpBlock",
    "code": "flowforge.blocks.code:CodeBlock",
    "command": "flowforge.blocks.command:CommandBlock",
    "llm": "flowforge.blocks.llm:LlmBlock",
}
_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class BlockTypeRegistry:
    """Maps block type names to their classes.

    Built-in types are imported lazily from ``flowforge.blocks``; while a built-in module does
    not exist the field model from ``builtin_specs`` stands in, so definitions still validate.
    The entry-point group ``flowforge.blocks`` is read once, the first time a name is missing,
    and an entry point is imported only when its name is asked for.
    """

    def __init__(self, *, builtins: bool = True, use_entry_points: bool = True) -> None:
        self._builtins = dict(BUILTIN_IMPLEMENTATIONS) if builtins else {}
        self._loaded: dict[str, type[BlockSpec]] = {}
        self._registered: dict[str, type[BlockSpec]] = {}
        self._use_entry_points = use_entry_points
        self._entry_points: dict[str, EntryPoint] | None = None
        self._lock = threading.Lock()

    def register(self, name: str, cls: type[BlockSpec]) -> None:
        """Register ``cls`` under ``name``; a built-in name only takes a subclass of its model."""
        if not _TYPE_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid block type name")
        if not (isinstance(cls, type) and issubclass(cls, BlockSpec)):
            raise TypeError(f"a block type must be a subclass of flowforge.Block, got {cls!r}")
        builtin = BUILTIN_SPECS.get(name)
        if name in self._builtins and builtin is not None and not issubclass(cls, builtin):
            raise ValueError(f"'{name}' is a built-in block type")
        with self._lock:
            if name in self._builtins:
                self._loaded[name] = cls
            else:
                self._registered[name] = cls

    def get(self, name: str) -> type[BlockSpec] | None:
        """The class of block type ``name``, or None when there is none."""
        if name in self._builtins:
            return self._builtin(name)
        found = self._registered.get(name)
        if found is not None or not self._use_entry_points:
            return found
        return self._from_entry_point(name)

    def names(self) -> tuple[str, ...]:
        """Every available type name, sorted (entry points included)."""
        return tuple(sorted({*self._builtins, *self._registered, *self._entry_point_map()}))

    def unknown_type_message(self, name: str) -> str:
        """The problem to report for a type name that ``get`` did not find."""
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown block type '{name}' (known: {', '.join(known)}){hint}"

    def _builtin(self, name: str) -> type[BlockSpec]:
        cls = self._loaded.get(name)
        if cls is None:
            target = self._builtins[name]
            cls = _import_builtin(target, fallback=BUILTIN_SPECS.get(name))
            if cls is None:  # an installation missing a module of its own
                raise ImportError(f"built-in block type '{name}': {target} is missing")
            self._loaded[name] = cls
        return cls

    def _entry_point_map(self) -> dict[str, EntryPoint]:
        if not self._use_entry_points:
            return {}
        if self._entry_points is None:
            found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
            self._entry_points = found
        return self._entry_points

    def _from_entry_point(self, name: str) -> type[BlockSpec] | None:
        entry_point = self._entry_point_map().get(name)
        if entry_point is None:
            return None
        cls: type[BlockSpec] = entry_point.load()
        self.register(name, cls)
        return cls


def _import_builtin(target: str, *, fallback: type[Block] | None) -> type[BlockSpec] | None:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only the module itself missing means "not written yet"; a broken import inside it
        # must not be hidden.
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            return fallback
        raise
    cls: type[BlockSpec] | None = getattr(module, attribute, None)
    if cls is None:
        if fallback is None:
            raise ImportError(f"{target} does not exist")
        return fallback
    return cls


_default_registry = BlockTypeRegistry()


def default_registry() -> BlockTypeRegistry:
    """The process-wide registry used when no other is given."""
    return _default_registry


def block_type(name: str) -> Callable[[type[B]], type[B]]:
    """Class decorator registering a custom block type in the default registry.

    >>> @block_type("greet")
    ... class Greet(Block):
    ...     name: str
    ...     async def run(self, ctx): return f"hello {self.name}"
    """

    def register(cls: type[B]) -> type[B]:
        cls.type_name = name
        default_registry().register(name, cls)
        return cls

    return register


class UnavailableBlock(Block):
    """Stands for a block type this process does not have (a custom type registered elsewhere).

    A stored run that uses it can still be shown, listed and replayed; running such a block
    fails with ``UnknownBlockType`` and is not retried.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    async def run(self, ctx: Any) -> Any:
        raise NonRetryableError(
            f"block type '{self.type}' is not registered in this process: import the module "
            "that declares it, or install the package that provides it",
            error_type="UnknownBlockType",
        )


def registry_for_stored(types: Iterable[str]) -> BlockTypeRegistry:
    """The default registry, plus placeholders for ``types`` it does not know.

    Stored definitions were valid when they were applied; reading them back must not fail
    because this process lacks a custom type."""
    registry = default_registry()
    missing = sorted({name for name in types if registry.get(name) is None})
    if not missing:
        return registry
    lenient = BlockTypeRegistry()
    for name, cls in registry._registered.items():
        lenient.register(name, cls)
    for name in missing:
        lenient.register(
            name,
            type(
                f"Unavailable_{name}",
                (UnavailableBlock,),
                {"type_name": name, "__module__": __name__},
            ),
        )
    return lenient
