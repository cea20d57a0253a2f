"""Checking a signal before it reaches a run: its name and its payload (SPEC 2.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from flowforge.definition.compiled import CompiledBlock, CompiledWorkflow
from flowforge.engine.values import has_nul
from flowforge.errors import InvalidInputError

if TYPE_CHECKING:
    from flowforge.definition.control_specs import WaitForSignalSpec


def check_signal(workflow: CompiledWorkflow, name: str, payload: Any) -> None:
    """Refuse a signal no block of the workflow waits for, or whose payload fits none of the
    ``schema``s of the blocks that wait for it. Raises ``InvalidInputError``."""
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the payload of signal '{name}' is not JSON: {exc}") from None
    if has_nul(payload):
        raise InvalidInputError(
            f"the payload of signal '{name}' holds a NUL character (\\x00): the store cannot "
            "keep it"
        )
    specs = [spec for spec in _signal_blocks(workflow.blocks) if spec.signal == name]
    if not specs:
        known = sorted({spec.signal for spec in _signal_blocks(workflow.blocks)})
        listed = f" (it waits for: {', '.join(known)})" if known else " (it waits for none)"
        raise InvalidInputError(
            f"workflow {workflow.spec.id} has no wait_for_signal block for signal '{name}'{listed}"
        )
    problems = []
    for spec in specs:
        if spec.payload_schema is None:
            return
        problem = _schema_problem(spec.payload_schema, payload)
        if problem is None:
            return
        problems.append(f"block '{spec.id}': {problem}")
    raise InvalidInputError(f"the payload of signal '{name}' is invalid: {'; '.join(problems)}")


def _signal_blocks(blocks: Mapping[str, CompiledBlock]) -> Iterator[WaitForSignalSpec]:
    for block in blocks.values():
        if block.spec.type == "wait_for_signal":
            yield cast("WaitForSignalSpec", block.spec)
        if block.body is not None:
            yield from _signal_blocks(block.body.blocks)


def _schema_problem(schema: dict[str, Any], payload: Any) -> str | None:
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{error.message}" + (f" (at {where})" if where else "")
