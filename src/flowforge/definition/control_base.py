"""The bases of the control-flow block types: blocks the engine runs itself, and bodies.

The types themselves are in ``control_specs`` and are imported only by a definition that uses
one (the registry loads them): the engine tells them apart by ``spec.type``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SerializeAsAny, ValidationInfo, field_validator

from flowforge.definition.block import Block, BlockSpec

SINGLE_BODY_ID = "do"
"""The id of a ``do`` that is one block given without an id."""


def case_key(value: Any) -> str:
    """Switch values and case keys compare as JSON text: ``true`` matches the case ``true``."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


Body = SerializeAsAny[BlockSpec] | tuple[SerializeAsAny[BlockSpec], ...]


class ControlBlock(Block):
    """A block the engine runs itself (no worker slot, no ``run``)."""

    control: ClassVar[bool] = True

    async def run(self, ctx: Any) -> Any:  # pragma: no cover - the planner runs these
        raise NotImplementedError(f"'{self.type}' blocks are run by the engine, not by a worker")


class ContainerBlock(ControlBlock):
    """A block with a body (``do``): one block, or a list of blocks forming a sub-graph.

    ``retry`` and ``timeout`` given on the container are the defaults of its body's blocks."""

    do: Body
    has_body: ClassVar[bool] = True

    @field_validator("do", mode="before")
    @classmethod
    def _parse_body(cls, value: Any, info: ValidationInfo) -> Any:
        from flowforge.definition.registry import default_registry

        context = info.context if isinstance(info.context, Mapping) else {}
        registry = context.get("registry") or default_registry()
        return parse_body(value, registry)

    @property
    def body(self) -> tuple[BlockSpec, ...]:
        return self.do if isinstance(self.do, tuple) else (self.do,)

    @property
    def single(self) -> bool:
        """``do`` is one block: each iteration's output is that block's output."""
        return not isinstance(self.do, tuple)

    def body_variables(self) -> frozenset[str]:
        """The names the body's templates see besides the workflow's (``item``, ``index``)."""
        return frozenset()


def parse_body(value: Any, registry: Any) -> Any:
    """Turn a raw ``do`` into block models by their ``type`` (instances pass through)."""
    if isinstance(value, Mapping):
        return _body_block({"id": SINGLE_BODY_ID, **value}, registry)
    if isinstance(value, list | tuple):
        return tuple(_body_block(item, registry) for item in value)
    return value


def _body_block(item: Any, registry: Any) -> Any:
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        return item
    cls = registry.get(item["type"])
    if cls is None:
        raise ValueError(registry.unknown_type_message(item["type"]))
    return cls.model_validate(item, context={"registry": registry})
