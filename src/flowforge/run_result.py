"""The run record users get back (SPEC 3): from ``flowforge.run``, ``Engine.get`` and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowforge.definition.compiled import CompiledWorkflow
from flowforge.engine.records import AttemptRecord, RunRecord
from flowforge.engine.run_state import RunState


@dataclass(frozen=True)
class BlockResult:
    block_id: str
    type: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    output: Any
    error: dict[str, Any] | None
    annotations: dict[str, Any] | None = None
    """What the completed attempt noted (``ctx.annotate``), e.g. an ``llm`` block's usage."""


@dataclass(frozen=True)
class RunResult:
    """A run as users see it; ``to_dict()`` is the JSON record of SPEC 3."""

    run_id: str
    workflow_id: str
    workflow_version: int
    status: str
    parameters: dict[str, Any]
    outputs: dict[str, Any] | None
    failure_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    blocks: list[BlockResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def block(self, block_id: str) -> BlockResult:
        for block in self.blocks:
            if block.block_id == block_id:
                return block
        raise KeyError(block_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "workflow_version": self.workflow_version,
            "status": self.status,
            "parameters": self.parameters,
            "outputs": self.outputs,
            "failure_reason": self.failure_reason,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "blocks": [
                {
                    "block_id": b.block_id,
                    "type": b.type,
                    "status": b.status,
                    "attempts": b.attempts,
                    "started_at": _iso(b.started_at),
                    "finished_at": _iso(b.finished_at),
                    "output": b.output,
                    "error": b.error,
                    **({"annotations": b.annotations} if b.annotations else {}),
                }
                for b in self.blocks
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def build_result(
    record: RunRecord, workflow: CompiledWorkflow, state: RunState, attempts: list[AttemptRecord]
) -> RunResult:
    """Combine the run's row, its replayed state and its attempts into the record."""
    first_start: dict[str, datetime] = {}
    for attempt in attempts:
        if attempt.started_at is not None and attempt.block_id not in first_start:
            first_start[attempt.block_id] = attempt.started_at
    blocks = []
    for block_id, block in workflow.blocks.items():
        bs = state.blocks[block_id]
        blocks.append(
            BlockResult(
                block_id=block_id,
                type=block.spec.type,
                status=bs.status.value,
                attempts=bs.attempts,
                started_at=first_start.get(block_id, bs.started_at),
                finished_at=bs.finished_at if bs.is_final else None,
                output=bs.output,
                error=bs.error,
                annotations=bs.annotations,
            )
        )
    return RunResult(
        run_id=record.run_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        status=record.status,
        parameters=dict(state.params_view),
        outputs=record.outputs,
        failure_reason=record.failure_reason,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        blocks=blocks,
    )


def result_from_state(state: RunState, workflow: CompiledWorkflow) -> RunResult:
    """The record of a run this process just ran, from its in-memory state (no reads)."""
    record = RunRecord(
        run_id=state.run_id,
        workflow_id=state.workflow_id,
        workflow_version=state.workflow_version,
        status=state.status.value,
        parameters=state.parameters,
        outputs=state.outputs,
        failure_reason=state.failure_reason,
        idempotency_key=None,
        created_at=state.created_at,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )
    return build_result(record, workflow, state, [])
