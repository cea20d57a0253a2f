"""Field models of the control-flow block types (SPEC 2.3): the engine runs them itself.

They have no ``run``: a worker never executes them. The planner starts their iterations
(``for_each``, ``loop``), chooses a branch (``switch``), waits for a signal
(``wait_for_signal``) or starts a child run (``workflow``), holding no worker slot meanwhile.
Imported only when a definition uses one of them (see the registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator

from flowforge.definition.control_base import ContainerBlock, ControlBlock, case_key
from flowforge.definition.fields import (
    BLOCK_ID_PATTERN,
    NAME_PATTERN,
    WORKFLOW_ID_PATTERN,
    JsonSchema,
)

SIGNAL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"


def _keys_as_text(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {case_key(key): item for key, item in value.items()}
    return value


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


BlockIdList = Annotated[
    tuple[Annotated[str, Field(pattern=BLOCK_ID_PATTERN)], ...], BeforeValidator(_one_or_many)
]


class ForEachSpec(ContainerBlock):
    """Run ``do`` once per element of ``items``, up to ``concurrency`` at once."""

    type_name: ClassVar[str] = "for_each"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"do", "loop_variable", "concurrency"})

    items: Any
    concurrency: int = Field(1, ge=1)
    loop_variable: str = Field("item", pattern=NAME_PATTERN)

    def body_variables(self) -> frozenset[str]:
        return frozenset({"index", self.loop_variable})


class LoopSpec(ContainerBlock):
    """Run ``do`` again and again until ``until`` holds, at most ``max_iterations`` times."""

    type_name: ClassVar[str] = "loop"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"do", "until", "max_iterations"})
    expression_fields: ClassVar[frozenset[str]] = frozenset({"until"})

    until: str = Field(min_length=1)
    max_iterations: int = Field(ge=1)

    def body_variables(self) -> frozenset[str]:
        return frozenset({"iteration"})


class SwitchSpec(ControlBlock):
    """Choose the case matching ``value``; blocks listed under other cases are skipped."""

    type_name: ClassVar[str] = "switch"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"value", "cases", "default"})
    expression_fields: ClassVar[frozenset[str]] = frozenset({"value"})

    value: str = Field(min_length=1)
    cases: Annotated[dict[str, BlockIdList], BeforeValidator(_keys_as_text)]
    default: BlockIdList = ()

    @field_validator("cases")
    @classmethod
    def _no_default_case(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "default" in value:
            raise ValueError("'default' is not a case: list its blocks under the field 'default'")
        if not value:
            raise ValueError("a switch needs at least one case")
        return value

    def switch_listing(self) -> dict[str, tuple[str, ...]]:
        """Every block the switch decides on, with the case keys that choose it."""
        chosen_by: dict[str, list[str]] = {}
        for key, block_ids in (*self.cases.items(), ("default", self.default)):
            for block_id in block_ids:
                chosen_by.setdefault(block_id, []).append(key)
        return {block_id: tuple(keys) for block_id, keys in chosen_by.items()}


class WaitForSignalSpec(ControlBlock):
    """Wait for the signal ``signal`` sent to the run; output its payload.

    A signal sent before the block waits is kept for it. ``timeout`` (the field every block
    has) limits the wait: the block then fails with ``Timeout``."""

    type_name: ClassVar[str] = "wait_for_signal"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"signal", "payload_schema"})

    signal: str = Field(pattern=SIGNAL_NAME_PATTERN, max_length=200)
    payload_schema: JsonSchema | None = Field(None, alias="schema")


class WorkflowCallSpec(ControlBlock):
    """Start a run of workflow ``workflow`` (its latest version, or ``version``) as a child of
    this run; output the child's outputs. Canceling the parent cancels the child."""

    type_name: ClassVar[str] = "workflow"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"workflow", "version"})

    workflow: str = Field(pattern=WORKFLOW_ID_PATTERN)
    version: int | None = Field(None, ge=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


CONTROL_SPECS: dict[str, type[ControlBlock]] = {
    "for_each": ForEachSpec,
    "loop": LoopSpec,
    "switch": SwitchSpec,
    "wait_for_signal": WaitForSignalSpec,
    "workflow": WorkflowCallSpec,
}
